"""The benchmarks of hf_crossaug (not part of the installed package): run from a checkout as modules, e.g.
``python -m benchmarks.reproduce``; benchmarks/README.md is the report of what they measured."""
