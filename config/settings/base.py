"""Settings shared by every profile. Everything a deployment changes comes from the environment."""

from datetime import timedelta
from pathlib import Path

from config.env import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("STRONGBOX_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "insecure-dev-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # django.contrib.admin, whose site asks users with a two-factor device for a code.
    "organizations.apps.StrongboxAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    # TOTP devices of local accounts (organizations/two_factor.py).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",  # one-time recovery codes
    "organizations",
    "audit",
    "destinations",
    "backups",
    "schedules",
    "alerts",
    "restores",
    "pitr",
    "drills",
    "front",
]

MIDDLEWARE = [
    "config.middleware.RejectNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session signed in with a one-time code.
    "django_otp.middleware.OTPMiddleware",
    # After authentication: services record the request's user and address (audit log).
    "audit.context.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: a locked-out sign-in is refused before the password is hashed. Then
# passwords (refused but for superusers when STRONGBOX_LOCAL_LOGIN is off) and single sign-on
# (answering only its callback, when configured): organizations/oidc.py.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "organizations.oidc.LocalPasswordBackend",
    "organizations.oidc.SsoBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "front.context_processors.tenancy",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("STRONGBOX_SQLITE_PATH", str(VAR_DIR / "strongbox.sqlite3")),
        # IMMEDIATE: a transaction takes the write lock up front and waits for it (timeout);
        # the default deferred one fails at once with "database is locked" when it must
        # upgrade a read lock while another worker process writes.
        # WAL journal: a commit is one fsync of the log instead of the rollback journal's
        # several (progress writes sat on restores' data path), and readers (pages, SSE)
        # no longer wait for a writer. synchronous=FULL keeps every commit durable: a WAL
        # segment is acknowledged to PostgreSQL only once its row is.
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
        },
    }
}

DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES["default"] = database_from_url(DATABASE_URL)
else:
    # The embedded profile needs nothing installed, not even its var/ directory.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Strongbox's own settings.
STRONGBOX_REGION = env_str("STRONGBOX_REGION", "local1")
STRONGBOX_LOCAL_DESTINATION_ROOT = Path(
    env_str("STRONGBOX_LOCAL_DESTINATION_ROOT", str(VAR_DIR / "artifacts"))
)
STRONGBOX_COMPRESSION = env_str("STRONGBOX_COMPRESSION", "zstd")
STRONGBOX_COMPRESSION_LEVEL = env_int("STRONGBOX_COMPRESSION_LEVEL", 3)
# Encryption keys per organisation never live in the database: they come from a
# key file (one "org-slug-or-id=base64key" per line) or are derived from the master key.
# Several master keys, newest first, separated by commas (config/keyring.py): the newest
# encrypts, the older ones still decrypt what was written under them.
STRONGBOX_MASTER_KEY = env_str("STRONGBOX_MASTER_KEY", "")
STRONGBOX_KEY_FILE = env_str("STRONGBOX_KEY_FILE", "")
# age public keys (age1…, separated by commas or whitespace) every backup is encrypted to,
# beside each organisation's own; set, backups are age artifacts and workers need no
# private key to take them. Restores read the identities in STRONGBOX_AGE_IDENTITY_FILE
# (an age-keygen file) and each organisation's own (backups/keys.py).
STRONGBOX_AGE_RECIPIENTS = env_str("STRONGBOX_AGE_RECIPIENTS", "")
STRONGBOX_AGE_IDENTITY_FILE = env_str("STRONGBOX_AGE_IDENTITY_FILE", "")
# The production profile refuses to start without a master key unless this says that
# unencrypted backups are intended.
STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS = env_bool("STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS", False)
# Without a master key, stored secrets are encrypted with a key generated here on first use
# (never with SECRET_KEY); every process of an installation must see the same file.
STRONGBOX_SECRETS_KEY_FILE = env_str("STRONGBOX_SECRETS_KEY_FILE", str(VAR_DIR / "secrets.key"))
STRONGBOX_JWT_TTL_SECONDS = env_int("STRONGBOX_JWT_TTL_SECONDS", 3600)
# Audit events older than this are purged daily (0 keeps them for ever).
STRONGBOX_AUDIT_RETENTION_DAYS = env_int("STRONGBOX_AUDIT_RETENTION_DAYS", 365)
STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS = env_int("STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS", 120)
STRONGBOX_TMP_DIR = Path(env_str("STRONGBOX_TMP_DIR", str(VAR_DIR / "tmp")))
# A scheduled slot whose backup has not completed this long after it raises an alert.
STRONGBOX_SCHEDULE_GRACE_MINUTES = env_int("STRONGBOX_SCHEDULE_GRACE_MINUTES", 60)
# Anomaly alerts (backups/anomaly.py): a completed backup is compared with the median of
# the last HISTORY completed backups of its series, once there are MIN_HISTORY of them.
# The percentages and the row floor are defaults that each database may override.
STRONGBOX_ANOMALY_HISTORY = env_int("STRONGBOX_ANOMALY_HISTORY", 7)
STRONGBOX_ANOMALY_MIN_HISTORY = env_int("STRONGBOX_ANOMALY_MIN_HISTORY", 3)
STRONGBOX_ANOMALY_DROP_PERCENT = env_int("STRONGBOX_ANOMALY_DROP_PERCENT", 50)
STRONGBOX_ANOMALY_JUMP_PERCENT = env_int("STRONGBOX_ANOMALY_JUMP_PERCENT", 200)
STRONGBOX_ANOMALY_MIN_ROWS = env_int("STRONGBOX_ANOMALY_MIN_ROWS", 100)
STRONGBOX_ANOMALY_COMPRESSION_DROP_PERCENT = env_int(
    "STRONGBOX_ANOMALY_COMPRESSION_DROP_PERCENT", 50
)
# Size and compression changes of smaller dumps than this (bytes) are not judged.
STRONGBOX_ANOMALY_MIN_BYTES = env_int("STRONGBOX_ANOMALY_MIN_BYTES", 65536)
# A progress stream closes after this long even if the work goes on (clients reconnect).
STRONGBOX_SSE_MAX_SECONDS = env_int("STRONGBOX_SSE_MAX_SECONDS", 3600)
STRONGBOX_WEBHOOK_TIMEOUT_SECONDS = env_int("STRONGBOX_WEBHOOK_TIMEOUT_SECONDS", 10)
# Failed delivery attempts in a row after which a channel raises notification_failed.
STRONGBOX_NOTIFICATION_FAILURES_ALERT = env_int("STRONGBOX_NOTIFICATION_FAILURES_ALERT", 3)
# Each S3 call's attempt waits this long to connect and this long for each read (seconds);
# a backup's calls are tried this many times in all, the connection test's once
# (destinations/backends/s3.py S3Timeouts).
STRONGBOX_S3_CONNECT_TIMEOUT = env_int("STRONGBOX_S3_CONNECT_TIMEOUT", 2)
STRONGBOX_S3_READ_TIMEOUT = env_int("STRONGBOX_S3_READ_TIMEOUT", 4)
STRONGBOX_S3_MAX_ATTEMPTS = env_int("STRONGBOX_S3_MAX_ATTEMPTS", 3)
# Hosts organisations without a host policy of their own may reach (networks, names,
# *.wildcards; see organizations/hostpolicy.py). Empty: any host except the always-refused
# link-local and cloud metadata addresses.
STRONGBOX_DEFAULT_ALLOWED_HOSTS = env_list("STRONGBOX_DEFAULT_ALLOWED_HOSTS")
# PostgreSQL server binaries for PITR (pg_waldump, and initdb/postgres for recoveries);
# empty: found under /usr/lib/postgresql/<version>/bin or on PATH.
STRONGBOX_PG_BIN_DIR = env_str("STRONGBOX_PG_BIN_DIR", "")
# WAL archiving older than this raises a wal_lag alert.
STRONGBOX_WAL_LAG_SECONDS = env_int("STRONGBOX_WAL_LAG_SECONDS", 15 * 60)
# archive_wal stores up to this many further ready WAL files per run and leaves markers
# here, so PostgreSQL's next archive_command calls return without starting Django
# (pitr/wal_spool.py; the fast path reads the same environment variables).
STRONGBOX_WAL_ARCHIVE_AHEAD = env_int("STRONGBOX_WAL_ARCHIVE_AHEAD", 16)
# fetch_wal, during a recovery, downloads up to this many next segments ahead likewise.
STRONGBOX_WAL_FETCH_AHEAD = env_int("STRONGBOX_WAL_FETCH_AHEAD", 16)
STRONGBOX_WAL_SPOOL_DIR = Path(env_str("STRONGBOX_WAL_SPOOL_DIR", str(VAR_DIR / "wal-spool")))
# Asynchronous archiving (archive_wal --async, pitr/pusher.py): files archived at once, the
# most WAL taken ahead of PostgreSQL (bytes; beyond it the backlog waits in pg_wal, never
# dropped), and how long an idle pusher stays. The command itself waits up to
# STRONGBOX_WAL_ASYNC_TIMEOUT seconds (60; read by pitr/wal_async.py before Django starts).
STRONGBOX_WAL_ASYNC_PROCESSES = env_int("STRONGBOX_WAL_ASYNC_PROCESSES", 2)
STRONGBOX_WAL_ASYNC_QUEUE_MAX = env_int("STRONGBOX_WAL_ASYNC_QUEUE_MAX", 1 << 30)
STRONGBOX_WAL_ASYNC_IDLE_SECONDS = env_int("STRONGBOX_WAL_ASYNC_IDLE_SECONDS", 60)
# pitr.verify: every housekeeping run lists every archived WAL file in its destinations and
# re-reads (checksums) up to this many bytes of the least recently verified; 0: listing only.
STRONGBOX_WAL_VERIFY_BYTES_PER_RUN = env_int("STRONGBOX_WAL_VERIFY_BYTES_PER_RUN", 256 << 20)
# A point-in-time restore recovers into a private copy; replaying WAL may take this long.
STRONGBOX_PITR_TIMEOUT_SECONDS = env_int("STRONGBOX_PITR_TIMEOUT_SECONDS", 6 * 3600)
# argv prefix that starts that copy's server (it refuses root); empty: none, or a user
# namespace (unshare --map-user) when the worker runs as root.
STRONGBOX_PITR_LAUNCHER = env_str("STRONGBOX_PITR_LAUNCHER", "")

# Alert e-mail (Django's mail framework).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "strongbox@localhost")

# Each organisation may point files backups, SQLite databases and local destinations at
# <tenant root>/<organisation slug>/ and at the roots the operator grants it alone
# (organizations/validators.py; ``manage.py grant_path``).
STRONGBOX_TENANT_ROOT = Path(env_str("STRONGBOX_TENANT_ROOT", str(VAR_DIR / "tenants")))

Q_CLUSTER = {
    "name": "strongbox",
    "workers": env_int("STRONGBOX_WORKERS", 2),
    "timeout": env_int("STRONGBOX_TASK_TIMEOUT", 6 * 3600),
    "retry": env_int("STRONGBOX_TASK_RETRY", 6 * 3600 + 60),
    "max_attempts": 1,
    "catch_up": False,
    "orm": "default",
    "poll": env_float("STRONGBOX_QUEUE_POLL_SECONDS", 0.5),
    "save_limit": 1000,
    "label": "Tasks",
}

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = REDIS_URL

STRONGBOX_LOG_JSON = env_bool("STRONGBOX_LOG_JSON", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "config.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "config.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(context)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["context"],
            "formatter": "json" if STRONGBOX_LOG_JSON else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("STRONGBOX_LOG_LEVEL", "INFO")},
}

# Limits against guessing (organizations/lockout.py, api/base/throttling.py). Client
# addresses are REMOTE_ADDR, or the X-Forwarded-For entry that many trusted proxies back.
STRONGBOX_PROXY_COUNT = env_int("STRONGBOX_PROXY_COUNT", 0)
STRONGBOX_LOGIN_FAILURE_LIMIT = env_int("STRONGBOX_LOGIN_FAILURE_LIMIT", 10)
STRONGBOX_LOGIN_ADDRESS_FAILURE_LIMIT = env_int("STRONGBOX_LOGIN_ADDRESS_FAILURE_LIMIT", 50)
STRONGBOX_LOGIN_COOLOFF_MINUTES = env_int("STRONGBOX_LOGIN_COOLOFF_MINUTES", 15)
# Failures count per (username, address), and per address at the higher bound above; the
# handler applies each set's own limit (AXES_FAILURE_LIMIT is the per-pair one).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
# STRONGBOX_LOGIN_FAILURE_LIMIT=0 turns the lockout off; the address limit at 0 only its bound.
AXES_ENABLED = STRONGBOX_LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = STRONGBOX_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = (
    timedelta(minutes=STRONGBOX_LOGIN_COOLOFF_MINUTES) if STRONGBOX_LOGIN_COOLOFF_MINUTES else None
)
AXES_HANDLER = "organizations.lockout.LockoutHandler"
AXES_CLIENT_IP_CALLABLE = "api.base.throttling.client_address"
AXES_USERNAME_CALLABLE = "organizations.lockout.attempted_username"
AXES_LOCKOUT_CALLABLE = "organizations.lockout.lockout_response"
# A success forgets that user's failures from that address (the handler keeps the others);
# tries during a lockout are not counted, so it ends when Retry-After says.
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# No "AXES: BEGIN" line in every management command's output (archive_wal runs per WAL file).
AXES_VERBOSE = False
# axes masks these in the requests it records (its default two, and the one-time code).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token"]

# Two-factor authentication (django-otp's TOTP devices; organizations/two_factor.py). The
# issuer names Strongbox in authenticator apps; each wrong code doubles the wait before the
# device checks another (1 s, 2 s, 4 s…), on top of the sign-in lockout above.
OTP_TOTP_ISSUER = env_str("STRONGBOX_TOTP_ISSUER", "Strongbox")
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Single sign-on through an OpenID provider (organizations/sso.py, organizations/oidc.py;
# README "Single sign-on"): on when a client id is set. Endpoints left empty are discovered
# from the issuer's /.well-known/openid-configuration on the first sign-in.
STRONGBOX_OIDC_ISSUER = env_str("STRONGBOX_OIDC_ISSUER", "").rstrip("/")
STRONGBOX_OIDC_AUTHORIZATION_ENDPOINT = env_str("STRONGBOX_OIDC_AUTHORIZATION_ENDPOINT", "")
STRONGBOX_OIDC_TOKEN_ENDPOINT = env_str("STRONGBOX_OIDC_TOKEN_ENDPOINT", "")
STRONGBOX_OIDC_USERINFO_ENDPOINT = env_str("STRONGBOX_OIDC_USERINFO_ENDPOINT", "")
STRONGBOX_OIDC_JWKS_URI = env_str("STRONGBOX_OIDC_JWKS_URI", "")
STRONGBOX_OIDC_CLIENT_ID = env_str("STRONGBOX_OIDC_CLIENT_ID", "")
STRONGBOX_OIDC_CLIENT_SECRET = env_str("STRONGBOX_OIDC_CLIENT_SECRET", "")
STRONGBOX_OIDC_SCOPES = env_str("STRONGBOX_OIDC_SCOPES", "openid email profile")
STRONGBOX_OIDC_SIGN_ALGO = env_str("STRONGBOX_OIDC_SIGN_ALGO", "RS256")
STRONGBOX_OIDC_GROUPS_CLAIM = env_str("STRONGBOX_OIDC_GROUPS_CLAIM", "groups")
# group=organisation-slug:role entries (commas or new lines; * for every organisation).
STRONGBOX_OIDC_ROLE_MAP = env_str("STRONGBOX_OIDC_ROLE_MAP", "")
STRONGBOX_OIDC_BUTTON_LABEL = env_str("STRONGBOX_OIDC_BUTTON_LABEL", "single sign-on")
STRONGBOX_OIDC_TIMEOUT_SECONDS = env_int("STRONGBOX_OIDC_TIMEOUT_SECONDS", 10)
# Off: no password form, and passwords are refused everywhere except for superusers.
STRONGBOX_LOCAL_LOGIN = env_bool("STRONGBOX_LOCAL_LOGIN", True)

# Throttles count in the default cache: one Redis for every web process when there is one.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "strongbox",
        }
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "organizations.authentication.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "config.errors.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": [
        "api.base.throttling.AnonRateThrottle",
        "api.base.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("STRONGBOX_API_RATE_ANON", "600/min"),
        "user": env_rate("STRONGBOX_API_RATE_USER", "3000/min"),
        # Failed bearer-token authentications per client address (organizations/authentication.py).
        "bad_token": env_rate("STRONGBOX_API_RATE_BAD_TOKEN", "1000/hour"),
    },
    "NUM_PROXIES": STRONGBOX_PROXY_COUNT,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Strongbox API",
    "DESCRIPTION": (
        "Self-hosted database backups. One domain model served through several documented "
        "API dialects; authenticate with `Authorization: Bearer <token>` (an organisation "
        "API token or a JWT from `POST /api/auth/token`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.base.schema.document_rate_limits",
        "api.base.schema.document_empty_paging_values",
    ],
}

# The embedded profile serves its own static files; behind a real web server, turn it off.
STRONGBOX_SERVE_STATIC = env_bool("STRONGBOX_SERVE_STATIC", True)
# When set, /metrics needs "Authorization: Bearer <this token>".
STRONGBOX_METRICS_TOKEN = env_str("STRONGBOX_METRICS_TOKEN", "")
