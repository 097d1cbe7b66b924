"""`python -m emulators` is the `benchtwin` command."""

import sys

from emulators.launch import main

# Guarded: worker processes started with 'spawn' import the main module again.
if __name__ == "__main__":
    sys.exit(main())
