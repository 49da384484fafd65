"""`django.setup()` for a process that runs Django tasks; the fork server imports it once before forking
(TASKQ_PRELOAD), so every worker starts with the project's apps loaded. Needs DJANGO_SETTINGS_MODULE."""

import logging
import logging.handlers
import os

import django

# Django applies its LOGGING with dictConfig, which closes every handler already configured, and a closed
# MemoryHandler forgets its target: a worker that sets Django up after configuring its own (buffered) log,
# as under plain `taskq worker`, would then drop its log lines. Their targets are put back afterwards.
_buffered = [(h, h.target) for h in logging.getLogger().handlers if isinstance(h, logging.handlers.MemoryHandler)]
django.setup()
for handler, target in _buffered:
    handler.target = target
SETUP_PID = os.getpid()  # a worker forked after the setup sees its fork server's pid here, not its own
