"""A minimal Django site whose background work runs on taskq, in the site's own SQLite database."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "site_project.urls"
USE_TZ = True
INSTALLED_APPS = ["taskq.contrib.django", "notes"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        # BEGIN IMMEDIATE: an atomic() block takes SQLite's write lock at once, so a transaction that
        # reads and then writes never meets a worker's write with "database is locked".
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
    }
}
TASKS = {
    "default": {
        "BACKEND": "taskq.contrib.django.TaskqBackend",
        "QUEUES": ["default"],
        # taskq's tables live in this alias's database: an enqueue inside atomic() commits with it.
        "OPTIONS": {"DATABASE_ALIAS": "default"},
    }
}
