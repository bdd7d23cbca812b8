"""The mock model server, started on a free 127.0.0.1 port for one test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from models_registry.mock_llm import MockLLMServer, make_server


@pytest.fixture
def start_mock_llm() -> Iterator[Callable[..., MockLLMServer]]:
    """Start servers with options (``delay_ms``, ``tokens``); every one is stopped after."""
    servers: list[MockLLMServer] = []

    def start(**options) -> MockLLMServer:
        server = make_server("127.0.0.1", 0, **options)
        server.serve_in_thread()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mock_llm(start_mock_llm) -> MockLLMServer:
    return start_mock_llm()
