"""Config objects check themselves when they are built, from Python as from YAML, and backend-dependent
defaults live in the config (not in the command line)."""

import dataclasses

import pytest

from hf_crossaug.config.base import ConfigError
from hf_crossaug.config.generate import GenerationConfig
from hf_crossaug.config.recipe import Recipe
from hf_crossaug.config.select import SelectionConfig
from hf_crossaug.config.student import BACKEND_DEFAULTS, StudentConfig


@pytest.mark.parametrize("make, needle", [
    (lambda: GenerationConfig(temperature=-1), "'temperature' must be >= 0"),
    (lambda: GenerationConfig(top_p=0), "'top_p' must be in (0, 1]"),
    (lambda: SelectionConfig(k=0), "'k'"),
    (lambda: dataclasses.replace(GenerationConfig(), max_new_tokens=0), "'max_new_tokens' must be >= 1"),
    (lambda: StudentConfig(epochs=0), "'epochs' must be >= 1"),
])
def test_a_bad_value_is_refused_where_the_object_is_built(make, needle):
    with pytest.raises(ConfigError) as info:
        make()
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_recipe_still_names_the_file_and_the_nested_field(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: r\ntask: nli\ngeneration:\n  temperature: -1\n")
    with pytest.raises(ConfigError, match=f"^{path}: field 'generation.temperature' must be >= 0"):
        Recipe.from_yaml(path)


def test_backend_defaults_are_filled_by_the_config():
    frozen = StudentConfig(backend="frozen-features")
    assert (frozen.epochs, frozen.learning_rate, frozen.batch_size) == (8, 2e-3, 64)
    assert StudentConfig().epochs == BACKEND_DEFAULTS["finetune"]["epochs"] == 3
    assert StudentConfig(backend="frozen-features", epochs=2).epochs == 2  # what the user says wins
