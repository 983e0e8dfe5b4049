"""docs/architecture.md's examples run: every ```python block, top to bottom, in one fresh
process (as a reader pasting them into one file would), in a scratch directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_every_how_to_has_an_example() -> None:
    text = DOC.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    how_tos = [s for s in sections if s.startswith("How to add")]
    assert [s.splitlines()[0] for s in how_tos] == [
        "How to add an op", "How to add a frontend", "How to add a pass", "How to add an executor", "How to add a run hook",
        "How to add a tool kind",
    ]
    assert all(python_blocks(s) for s in how_tos)


def test_the_examples_run(tmp_path: Path) -> None:
    script = tmp_path / "architecture_examples.py"
    script.write_text("\n\n".join(python_blocks(DOC.read_text())))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
