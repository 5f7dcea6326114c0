"""Packaging detail pyproject.toml cannot say: the recipes ship inside the package.

``dataset_scripts/`` stays the top-level folder of the repository (one YAML per published dataset);
the wheel carries it as ``hf_crossaug/recipes/`` (``hf_crossaug.config.recipe.recipe_dirs`` looks there),
so ``crossaug recipes`` lists every recipe from any folder. An editable install reads the checkout's
``dataset_scripts/`` directly.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["hf_crossaug*"]), "hf_crossaug.recipes"],
    package_dir={"hf_crossaug.recipes": "dataset_scripts"},
)
