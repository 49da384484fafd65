"""taskq's benchmark suite: bare-driver ceilings, taskq itself, and peer queues, measured in one run.

Run it with `python -m bench --quick` (about two minutes) or `python -m bench` (the full sizes).
"""
