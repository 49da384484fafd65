"""The Django project of tests/django: its SQLite file (and PostgreSQL schema) come from the environment,
so that the test process and the pools it starts see the same databases."""

import os

from sqlalchemy.engine import make_url

SECRET_KEY = "taskq-tests"
USE_TZ = True
INSTALLED_APPS = ["taskq.contrib.django", "djangotest"]
try:
    import django.tasks  # noqa: F401
except ImportError:  # Django 5.2: the django-tasks backport is an app of its own
    INSTALLED_APPS.append("django_tasks")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["TASKQ_TEST_DJANGO_SQLITE"],
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
    }
}
TASKS = {
    "default": {
        "BACKEND": "taskq.contrib.django.TaskqBackend",
        "QUEUES": ["default", "ordered"],
        "OPTIONS": {"DATABASE_ALIAS": "default"},
    }
}
if os.environ.get("TASKQ_TEST_DJANGO_POSTGRES"):  # a private schema's SQLAlchemy URL (tests/support/databases.py)
    url = make_url(os.environ["TASKQ_TEST_DJANGO_POSTGRES"])
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.database,
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.host or "",
        "PORT": str(url.port or ""),
        "OPTIONS": {"options": url.query["options"]},
    }
    TASKS["pg"] = {"BACKEND": "taskq.contrib.django.TaskqBackend", "OPTIONS": {"DATABASE_ALIAS": "pg"}}
