"""Settings of the test project, chosen by environment variables.

COREQUEUE_DJANGO_DATABASE: `sqlite` (default) or `postgres`: Django's database, and where the
`default` queue keeps its jobs (`postgres`: the same database, so dispatches join
transactions; `sqlite`: the file COREQUEUE_DJANGO_JOBS_FILE). COREQUEUE_DJANGO_TEST_NAME names
the database Django's test runner creates on PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from psycopg import conninfo

BASE_DIR = Path(__file__).parent
SECRET_KEY = "test only"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["corequeue.contrib.django", "tests.django_project.shop"]

_DATABASE = os.environ.get("COREQUEUE_DJANGO_DATABASE", "sqlite")
_JOBS_FILE = os.environ.get("COREQUEUE_DJANGO_JOBS_FILE", str(BASE_DIR / "jobs.db"))


def _postgres() -> dict[str, Any]:
    options = conninfo.conninfo_to_dict(os.environ["COREQUEUE_TEST_POSTGRES_DSN"])
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": options.get("dbname", "postgres"),
        "USER": options.get("user", ""),
        "PASSWORD": options.get("password", ""),
        "HOST": options.get("host", ""),
        "PORT": options.get("port", ""),
        "TEST": {"NAME": os.environ.get("COREQUEUE_DJANGO_TEST_NAME", "corequeue_django_test")},
    }


if _DATABASE == "postgres":
    DATABASES = {"default": _postgres()}
    # The tests point the queue at Django's test database once the runner has created it.
    COREQUEUE: dict[str, Any] = {"queue": {"default": {"driver": "memory"}}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    COREQUEUE = {"queue": {"default": {"driver": "sqlite", "path": _JOBS_FILE}}}
