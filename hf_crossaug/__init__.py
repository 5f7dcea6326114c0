"""hf_crossaug: LLM-generated, teacher-labelled, selected training data for languages without labels.

The public API, importable from the top level (loaded lazily, so ``crossaug --help`` stays fast)::

    from hf_crossaug import Recipe, build_dataset, CrossAugBuilder, load_synthetic, build_training_set
    from hf_crossaug import DistillationConfig, DistillationTrainer, StudentConfig, train_student, evaluate_model

The package is layered; imports only run downward (a test checks it):
``utils`` -> ``config`` -> ``models`` -> ``backends`` -> ``stages`` -> ``build`` -> ``students`` ->
``methods`` -> ``hub`` -> ``cli``.
"""

from importlib import import_module

from .version import __version__

_EXPORTS = {
    "Recipe": "config.recipe", "load_recipe": "config.recipe", "GenerationConfig": "config.generate",
    "SelectionConfig": "config.select", "TeacherConfig": "config.teacher", "StudentConfig": "config.student",
    "build_dataset": "build.export", "run_pipeline": "build.pipeline", "CrossAugBuilder": "build.builder",
    "load_synthetic": "students.modes", "build_training_set": "students.modes", "parse_mode": "students.modes",
    "DistillationConfig": "students.trainer", "DistillationTrainer": "students.trainer",
    "prepare_distillation_dataset": "students.trainer", "train_student": "students.classification",
    "evaluate_model": "students.evaluate", "push": "hub",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_crossaug' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
