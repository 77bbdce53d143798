"""Production profile: PostgreSQL (DATABASE_URL), Redis broker (REDIS_URL), S3 artifacts.

Selected with DJANGO_SETTINGS_MODULE=config.settings.production. It refuses to start with
the development secret key, without an app database URL or broker, and without a master
key unless STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS=1 says that unencrypted backups are meant.
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int
from config.keyring import parse_master_keys

from .base import *  # noqa: F403
from .base import (
    DATABASE_URL,
    LOGGING,
    REDIS_URL,
    SECRET_KEY,
    STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS,
    STRONGBOX_MASTER_KEY,
)

if SECRET_KEY.startswith("insecure-"):
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) in production.")
if not DATABASE_URL:
    raise ImproperlyConfigured("Set DATABASE_URL to the PostgreSQL app database in production.")
if not REDIS_URL:
    raise ImproperlyConfigured("Set REDIS_URL: production workers share a Redis broker.")
if not parse_master_keys(STRONGBOX_MASTER_KEY) and not STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS:
    raise ImproperlyConfigured(
        "Set STRONGBOX_MASTER_KEY (or STRONGBOX_MASTER_KEY_FILE) in production: it encrypts "
        "backups and stored secrets. To store backups unencrypted on purpose, set "
        "STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS=1."
    )

DEBUG = False
STRONGBOX_SERVE_STATIC = env_bool("STRONGBOX_SERVE_STATIC", False)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
# One JSON object per log line unless turned off (base.py defaults to plain text).
STRONGBOX_LOG_JSON = env_bool("STRONGBOX_LOG_JSON", True)
LOGGING["handlers"]["console"]["formatter"] = "json" if STRONGBOX_LOG_JSON else "plain"
