"""taskq as a backend of Django's Tasks framework (django.tasks): `pip install 'taskq-sql[django]'`.

    TASKS = {"default": {"BACKEND": "taskq.contrib.django.TaskqBackend", "OPTIONS": {"DATABASE_ALIAS": "default"}}}
    INSTALLED_APPS = [..., "taskq.contrib.django"]   # for `python manage.py taskq_worker`
"""

from taskq.contrib.django.backend import TaskqBackend
from taskq.contrib.django.tasks import TaskqTask, options

__all__ = ["TaskqBackend", "TaskqTask", "options"]
