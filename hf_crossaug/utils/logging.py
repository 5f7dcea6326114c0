"""Console output: the ``hf_crossaug`` logger, one progress line per stage, and quiet libraries.

Library code logs through `get_logger` (stage functions still accept a ``log`` callable and default
to it). The CLI calls `setup_logging` once: our messages go to stderr, above any progress bar; by default
the bars, load reports and info messages of ``datasets``, ``transformers`` and ``huggingface_hub`` are
silenced, and ``-v/--verbose`` shows them again. Warnings from our logger and Python's ``warnings``
always show.
"""

from __future__ import annotations

import logging
import os
import sys

ROOT = "hf_crossaug"
_state = {"quiet": False, "handler": None}

# read by the libraries when they are imported, so setting them costs no import
QUIET_ENV = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
              "TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def get_logger(name: str | None = None) -> logging.Logger:
    """The package logger, or its child ``hf_crossaug.<name>``."""
    return logging.getLogger(f"{ROOT}.{name}" if name else ROOT)


def log_or_logger(log=None, name: str | None = None):
    """``log`` if a callable was given, else the ``info`` method of the package logger."""
    return log if log is not None else get_logger(name).info


class _TqdmHandler(logging.Handler):
    """Writes above an active tqdm bar instead of through it; looks ``sys.stderr`` up at each message."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            msg = self.format(record)
            if record.levelno >= logging.WARNING:
                msg = f"{record.levelname.lower()}: {msg}"
            tqdm.write(msg, file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(verbose: bool = False) -> None:
    """Console logging for the CLI (idempotent). ``verbose``: debug messages and the libraries' own output."""
    logger = get_logger()
    if _state["handler"] is not None:
        logger.removeHandler(_state["handler"])
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    _state.update(handler=handler, quiet=not verbose)
    if verbose:  # undo a quiet setup inherited through the environment (e.g. from a parent process)
        for key, value in QUIET_ENV.items():
            if os.environ.get(key) == value:
                del os.environ[key]
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    silence_libraries()


def silence_libraries() -> None:
    """Turn off the bars and load reports of the libraries already imported (later imports read the env)."""
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    if "transformers" in sys.modules:
        from transformers.utils import logging as tf_logging

        tf_logging.set_verbosity_error()
        tf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def is_quiet() -> bool:
    """True when `setup_logging` silenced the libraries (the CLI without ``-v``)."""
    return _state["quiet"]


def progress(total: int, desc: str, unit: str = "row", initial: int = 0, **kwargs):
    """One progress line for a stage: counts, rate and ETA. Redrawn in place on a terminal; elsewhere
    (a log file, CI) it prints at most every 30 s instead of at every step."""
    from tqdm.auto import tqdm

    tty = getattr(sys.stderr, "isatty", lambda: False)()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr,
                mininterval=0.1 if tty else 30.0, **kwargs)


def trainer_progress(trainer, desc: str) -> None:
    """Quiet mode: replace a `transformers.Trainer`'s own bars and printed log dicts with one `progress`
    line (steps, rate, ETA, last dev accuracy). Leaves the trainer alone with ``-v`` or outside the CLI."""
    if not is_quiet():
        return
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class OneLine(TrainerCallback):
        bar = None

        def on_train_begin(self, args, state, control, **kw):
            if state.is_world_process_zero:
                self.bar = progress(state.max_steps, desc, unit="step")

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            if self.bar is not None and metrics and "eval_accuracy" in metrics:
                self.bar.set_postfix(epoch=f"{state.epoch:.0f}", dev_acc=f"{metrics['eval_accuracy']:.3f}")

        def on_train_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(OneLine())
