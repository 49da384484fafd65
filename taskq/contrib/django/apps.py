from django.apps import AppConfig


class TaskqConfig(AppConfig):
    """Installs `manage.py taskq_worker`; no models (taskq's tables are Alembic's, not Django migrations')."""

    name = "taskq.contrib.django"
    label = "taskq"
    verbose_name = "taskq"
