"""`python -m lab.training RUN_DIR`: the training child process (started by lab/jobs.py, by `torchrun`
or by `accelerate launch`: one process per GPU)."""

import sys

from lab.training.engine import main

if len(sys.argv) != 2:
    print("usage: python -m lab.training RUN_DIR", file=sys.stderr)
    sys.exit(2)
sys.exit(main(sys.argv[1]))
