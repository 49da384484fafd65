"""`django.setup()` for a process that runs Django tasks; the fork server imports it once before forking
(TASKQ_PRELOAD), so every worker starts with the project's apps loaded. Needs DJANGO_SETTINGS_MODULE."""

import django

django.setup()
