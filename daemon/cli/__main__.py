"""`python -m casegate.daemon.cli`."""

import sys

from . import main

# Guarded: parser worker processes (spawn) import the main module again.
if __name__ == "__main__":
    sys.exit(main())
