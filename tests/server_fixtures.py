"""Pytest fixtures for endpoint tests: a real ``transformers serve`` (one per session) and fault proxies.

Registered from tests/conftest.py with ``pytest_plugins = ["server_fixtures"]``.
"""

from __future__ import annotations

import pytest

from fault_proxy import FaultProxy
from servers import ServedModel, embedded_generator_dir, start_transformers_serve, stop_server


@pytest.fixture(scope="session")
def served_model(tmp_path_factory) -> ServedModel:
    """``transformers serve`` of the embedded SmolLM2 on 127.0.0.1, killed at the end of the session."""
    log = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    served = start_transformers_serve(embedded_generator_dir(), log)
    yield served
    stop_server(served.proc)


@pytest.fixture
def make_proxy(served_model):
    """``make_proxy(delay=0.0) -> FaultProxy`` in front of the served model; all stopped after the test."""
    proxies: list[FaultProxy] = []

    def make(delay: float = 0.0) -> FaultProxy:
        proxies.append(FaultProxy(served_model.upstream, delay=delay).start())
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.stop()
