"""``python -m namu.cli`` runs the command line (as ``namu`` and ``python -m namu`` do)."""

from namu.cli import main

if __name__ == "__main__":
    main()
