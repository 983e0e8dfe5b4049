"""Fixtures of the agent tests: the loopback LLM server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agents.llm_server import LLMServer


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A started :class:`LLMServer` (it starts in about a millisecond), closed after the test."""
    with LLMServer() as server:
        yield server
