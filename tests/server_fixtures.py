"""Pytest fixtures for endpoint tests: a real ``transformers serve`` (one per session), fault proxies in front
of it, and fast in-process OpenAI stand-ins (no model) behind the same proxy.

Registered from tests/conftest.py with ``pytest_plugins = ["server_fixtures"]``.
"""

from __future__ import annotations

import contextlib

import pytest

from fault_proxy import FaultProxy
from openai_standin import start_standin
from servers import ServedModel, embedded_generator_dir, start_transformers_serve, stop_server


@pytest.fixture(scope="session")
def served_model(tmp_path_factory) -> ServedModel:
    """``transformers serve`` of the embedded SmolLM2 on 127.0.0.1, killed at the end of the session."""
    log = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    served = start_transformers_serve(embedded_generator_dir(), log)
    yield served
    stop_server(served.proc)


@contextlib.contextmanager
def _stopped_after(start):
    """``make(**kwargs)`` calling ``start``; every proxy it made is stopped on exit."""
    proxies: list[FaultProxy] = []

    def make(*args, **kwargs) -> FaultProxy:
        proxies.append(start(*args, **kwargs))
        return proxies[-1]

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture
def make_proxy(served_model):
    """``make_proxy(delay=0.0) -> FaultProxy`` in front of the served model; all stopped after the test."""
    with _stopped_after(lambda delay=0.0: FaultProxy(served_model.upstream, delay=delay).start()) as make:
        yield make


@pytest.fixture
def make_standin():
    """``make_standin(rates=None, seed=0, record=True, **standin) -> FaultProxy`` over an OpenAIStandIn."""
    with _stopped_after(start_standin) as make:
        yield make
