"""`python -m emulators` is the `benchtwin` command."""

import sys

from emulators.cli import main

sys.exit(main())
