"""Production profile: PostgreSQL (DATABASE_URL), Redis broker (REDIS_URL), S3 artifacts.

Selected with DJANGO_SETTINGS_MODULE=config.settings.production. It refuses to start with
the development secret key, without an app database URL or broker, and without a master
key unless STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS=1 says that unencrypted backups are meant.
HTTPS only: plain HTTP is redirected (except the health and metrics probes), HSTS for a
year, cookies secure; ``manage.py check --deploy`` passes without warnings.
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
# A TLS-terminating proxy in front must set X-Forwarded-Proto (replacing any a client sent):
# a request it forwarded over HTTPS is then secure here, and not redirected.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
# Plain HTTP is redirected to HTTPS; STRONGBOX_TLS_REDIRECT=0 when the proxy redirects
# itself (Django's warning about it is then silenced: the redirect is the proxy's).
SECURE_SSL_REDIRECT = env_bool("STRONGBOX_TLS_REDIRECT", True)
if not SECURE_SSL_REDIRECT:
    SILENCED_SYSTEM_CHECKS = ["security.W008"]
# Load balancers and Prometheus probe over plain HTTP, inside the network.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
# One JSON object per log line unless turned off (base.py defaults to plain text).
STRONGBOX_LOG_JSON = env_bool("STRONGBOX_LOG_JSON", True)
LOGGING["handlers"]["console"]["formatter"] = "json" if STRONGBOX_LOG_JSON else "plain"
