"""`python manage.py taskq_worker`: see taskq.contrib.django.worker."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from taskq.contrib.django.worker import run


class Command(BaseCommand):
    help = "Run taskq's worker pool for this project (the options of `taskq worker`; --help lists them)."

    def run_from_argv(self, argv: list[str]) -> None:
        # taskq's click command parses its own options (argparse would need each declared twice).
        run(argv[2:])
