"""`python -m namu` runs the command line."""

from namu.cli import main

if __name__ == "__main__":
    main()
