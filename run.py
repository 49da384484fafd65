"""`python run.py` = `taskq worker`: the worker pool as settings.yaml describes it (extra CLI options pass through)."""

import sys

from taskq.launch import main

if __name__ == "__main__":
    main(["worker", *sys.argv[1:]], prog_name="taskq")
