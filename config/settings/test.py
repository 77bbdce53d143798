"""Test profile: fast hashing, a fixed master key, and a file-based SQLite test database
(unless DATABASE_URL is set) so that real worker processes and live servers started by a
test can share it with the test process."""

import os
import tempfile
from pathlib import Path

from config.env import env_str

from .local import *  # noqa: F403
from .local import DATABASES, REDIS_URL, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Fixed unless given: worker processes a test starts may be handed other keys (rotation).
STRONGBOX_MASTER_KEY = env_str("STRONGBOX_MASTER_KEY", "test-master-key")
# One tenant root per test run, under the system temporary directory (never the operator's
# STRONGBOX_TENANT_ROOT: tests empty it); exported so that the worker processes a test starts
# use the same one. Tests put every path they register inside their organisation's root
# (tests/fixtures/tenants.py ``tenant_path``).
# Not created here (a manage.py command would leave it behind): tests create what they use.
STRONGBOX_TENANT_ROOT = Path(
    os.environ.setdefault(
        "STRONGBOX_TEST_TENANT_ROOT",
        str(Path(tempfile.gettempdir()) / f"strongbox-tenants-{os.getpid()}"),
    )
)

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # One file per test run (several may run at once); exported so that a worker process a
    # test starts can open the same database through STRONGBOX_SQLITE_PATH.
    _test_db = os.environ.setdefault(
        "STRONGBOX_TEST_SQLITE", str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")
    )
    DATABASES["default"]["TEST"] = {"NAME": _test_db}

# Concurrent test runs on one Redis must not take each other's tasks: a queue per run,
# inherited by the worker processes a test starts.
Q_CLUSTER = {
    **Q_CLUSTER,  # noqa: F405
    "name": os.environ.setdefault("STRONGBOX_TEST_QUEUE", f"strongbox-test-{os.getpid()}"),
    # A worker a test starts with Q_CLUSTER_NAME takes tasks of that queue alone (same
    # signing prefix); django-q2 reads this key whenever Q_CLUSTER_NAME is set.
    "ALT_CLUSTERS": {},
}

# The suite signs in and calls the API a lot from one address: rates no test reaches unless
# it lowers them (tests/api/test_throttling.py). Throttle counts in Redis (the production
# profile) are per test run, like the queue, so runs never see each other's.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": dict.fromkeys(("anon", "user", "bad_token"), "100000/min"),
}
if REDIS_URL:
    CACHES["default"]["KEY_PREFIX"] = Q_CLUSTER["name"]  # noqa: F405
