"""`python -m emulators.bench ...` is `benchtwin bench ...` (also where `--install-peers` can come first)."""

import sys

from emulators.bench.cli import main

sys.exit(main(sys.argv[1:]))
