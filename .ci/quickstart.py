"""Print the command lines of README.md's quick-start block, one per line."""

from __future__ import annotations

import pathlib
import sys

MARKER = "<!-- quickstart"


def main() -> int:
    text = pathlib.Path(__file__).resolve().parent.parent.joinpath("README.md").read_text()
    start = text.find(MARKER)
    if start < 0:
        print("README.md has no quick-start marker", file=sys.stderr)
        return 1
    fence = text.index("```bash\n", start) + len("```bash\n")
    block = text[fence : text.index("```", fence)]
    for line in block.splitlines():
        if line.strip():
            print(line.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
