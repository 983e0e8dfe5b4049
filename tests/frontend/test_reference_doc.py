"""docs/workflows.md's lists of builtins, methods and rejected constructs are generated
from the frontend's own tables."""

from __future__ import annotations

from pathlib import Path

from namu.frontend.reference import MARKERS, with_reference
from namu.frontend.rejections import REJECTED_FORMS

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"


def test_the_reference_is_current() -> None:
    page = DOC.read_text()
    assert all(marker in page for marker in MARKERS)
    assert page == with_reference(page), "docs/workflows.md is stale: run `python -m namu.frontend.reference --write docs/workflows.md`"


def test_every_rejection_and_builtin_is_listed() -> None:
    page = DOC.read_text()
    for written in ("`try: ... except* ...`", "`lambda x: ...`", "`global x`", "`sorted`", "`split`", "`append`"):
        assert written in page, written
    assert all(f"`{form}`" in page for form in REJECTED_FORMS)
