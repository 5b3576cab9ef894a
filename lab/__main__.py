"""`python -m lab ...`: the CLI twin of every tab (see lab/cli)."""

import sys

from lab.cli import main

sys.exit(main())
