"""Put first in a worker's `imports`: sets Django up (a no-op after the fork server's boot) and imports
every installed app's `tasks` module, where `@task` registers each Django task with taskq. Imported after
the fork, so a worker started after a deploy runs the new code."""

from django.utils.module_loading import autodiscover_modules

import taskq.contrib.django.boot  # noqa: F401  (django.setup(), before any app module is imported)

autodiscover_modules("tasks")
