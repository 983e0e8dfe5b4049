"""docs/agents.md's reference is generated from the agent file's models."""

from __future__ import annotations

from pathlib import Path

from namu.frontend.agents.docs import MARKERS, with_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "agents.md"


def test_the_reference_is_current() -> None:
    page = DOC.read_text()
    assert all(marker in page for marker in MARKERS)
    assert page == with_reference(page), "docs/agents.md is stale: run `python -m namu.frontend.agents.docs --write docs/agents.md`"


def test_the_reference_documents_every_key() -> None:
    page = DOC.read_text()
    for key in ("max_iterations", "max_cost_usd", "tool_mode", "circuit_breaker", "fallback", "semantic", "read_only", "allowed_hosts"):
        assert f"`{key}`" in page, key
