"""hf_crossaug: LLM-generated, teacher-labelled, selected training data for languages without labels."""

__version__ = "0.1.0"
