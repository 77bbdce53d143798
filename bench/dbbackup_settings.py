"""Minimal Django settings to run django-dbbackup against the benchmark database
(BENCH_ENGINE: postgresql, the default, or mariadb through PyMySQL)."""

import os

SECRET_KEY = "bench"  # noqa: S105
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "dbbackup"]
if os.environ.get("BENCH_ENGINE", "postgresql") == "mariadb":
    import pymysql

    pymysql.install_as_MySQLdb()  # Django's MySQL backend on PyMySQL: no mysqlclient build
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ["BENCH_DB_NAME"],
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["BENCH_DB_NAME"],
            "USER": os.environ.get("BENCH_PG_USER", "postgres"),
            "HOST": os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("BENCH_PG_PORT", "5432"),
        }
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ["BENCH_OUT_DIR"]},
    },
}
USE_TZ = True
