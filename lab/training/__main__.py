"""`python -m lab.training RUN_DIR`: the training child process (started by lab/jobs.py, by `torchrun`
or by `accelerate launch`: one process per GPU). Torch's CPU threads are chosen first, from the load other work puts
on the machine now (lab.estimate.apply_threads; LAB_THREADS or OMP_NUM_THREADS set by the user win), and recorded in
the run's status."""

import sys
import time

if len(sys.argv) != 2:
    print("usage: python -m lab.training RUN_DIR", file=sys.stderr)
    sys.exit(2)

from lab.errors import LabError  # noqa: E402
from lab.estimate import apply_threads, machine_now  # noqa: E402
from lab.training import write_status  # noqa: E402
from lab.training.engine import main, rank  # noqa: E402

now = machine_now()  # the load other work puts on the CPU as the run starts
try:
    threads = apply_threads(now)
except LabError as exc:  # a malformed LAB_THREADS: the run fails saying so
    write_status(sys.argv[1], state="failed", error=str(exc), ended=time.time())
    sys.exit(1)
print(f"torch threads: {threads.why}", file=sys.stderr, flush=True)
if rank() == 0:
    # the load factor takes this run's speed back to an idle CPU's for later estimates (lab.training.speed)
    factor = round(now.factor, 3) if threads.source == "load" else None
    write_status(sys.argv[1], threads=threads.count, threads_why=threads.why, load_factor=factor)
sys.exit(main(sys.argv[1]))
