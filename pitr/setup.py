"""What a database server needs to archive into Strongbox: a wrapper script per database.

PostgreSQL runs ``archive_command`` and ``restore_command`` with its own, nearly empty
environment, so ``manage.py archive_wal`` would start without Strongbox's settings: the app
database (``STRONGBOX_SQLITE_PATH`` of the embedded profile, or ``DATABASE_URL``), the keys
that decrypt destination secrets and encrypt the WAL, the spool directory. The wrapper
(``manage.py pitr_setup --database <id|name>``) carries the complete environment of the
process that generated it and calls the real commands with absolute paths.
"""

from __future__ import annotations

import logging
import os
import py_compile
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

from django.conf import settings
from django.db import connection

from organizations.models import Database

logger = logging.getLogger(__name__)

# Variables that the settings read and that a wrapper passes on when they are set here.
PASSED_PREFIXES = ("STRONGBOX_", "DJANGO_")
PASSED_NAMES = ("DATABASE_URL", "REDIS_URL", "PGSSLROOTCERT")
# Values that are secrets themselves (a *_FILE variable names a file instead, preferred).
SECRET_NAMES = {"STRONGBOX_MASTER_KEY", "DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}


@dataclass(frozen=True)
class WalSetup:
    database: Database
    script_name: str
    environment: dict[str, str]
    script: str

    def archive_command(self, path: str) -> str:
        return f"{shlex.quote(path)} archive %p %f"

    def restore_command(self, path: str) -> str:
        return f"{shlex.quote(path)} fetch %f %p"

    @property
    def has_secrets(self) -> bool:
        return any(name in SECRET_NAMES for name in self.environment)


def app_database_env() -> dict[str, str]:
    """How a child process finds the app database this process uses."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return {"STRONGBOX_SQLITE_PATH": str(Path(db["NAME"]).resolve())}
    configured = os.environ.get("DATABASE_URL", "")
    if configured and urlparse(configured).path.lstrip("/") == db["NAME"]:
        return {"DATABASE_URL": configured}  # as given (its options included)
    # Another database than the URL names (a test run's copy): spelled from the settings.
    auth = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    host = f"{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return {"DATABASE_URL": f"postgres://{host}/{db['NAME']}"}


def wal_environment() -> dict[str, str]:
    """The complete environment ``archive_wal`` / ``fetch_wal`` need, as this process has it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith(PASSED_PREFIXES) or name in PASSED_NAMES
    }
    # A *_FILE variable wins over its value: keep the file's name, not the secret.
    for name in list(env):
        if name.endswith("_FILE") and name.removesuffix("_FILE") in env:
            del env[name.removesuffix("_FILE")]
    env.pop("DATABASE_URL", None)
    env.update(app_database_env())
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get(
        "DJANGO_SETTINGS_MODULE", "config.settings.local"
    )
    # Paths the settings default from the code directory: spelled out, so a wrapper run
    # from anywhere (and a changed default) finds the same ones.
    env.setdefault("STRONGBOX_VAR_DIR", str(Path(settings.VAR_DIR).resolve()))
    env.setdefault("STRONGBOX_SECRETS_KEY_FILE", str(settings.STRONGBOX_SECRETS_KEY_FILE))
    env.setdefault("STRONGBOX_WAL_SPOOL_DIR", str(settings.STRONGBOX_WAL_SPOOL_DIR))
    env.setdefault("STRONGBOX_TMP_DIR", str(settings.STRONGBOX_TMP_DIR))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return dict(sorted(env.items()))


def script_name(database: Database) -> str:
    return f"strongbox-wal-{database.slug}-{str(database.pk)[:8]}.sh"


def wal_setup(*, database: Database, asynchronous: bool = False) -> WalSetup:
    """The wrapper script of ``database`` and the lines for postgresql.conf.

    ``asynchronous``: archive through the resident pusher (``pitr/wal_async.py``), the
    command itself run by ``python -S`` (no site-packages: it imports nothing but the
    standard library, and it runs once per WAL file)."""
    env = wal_environment()
    python = sys.executable
    manage = str(Path(settings.BASE_DIR).resolve() / "manage.py")
    exports = "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())
    run = " ".join(shlex.quote(part) for part in (python, manage))
    quick = " ".join(shlex.quote(part) for part in (python, "-S", manage))
    db_id = shlex.quote(str(database.pk))
    archive = (
        f"exec {quick} archive_wal --async --database {db_id}"
        if asynchronous
        else f"exec {run} archive_wal --database {db_id}"
    )
    script = f"""#!/bin/sh
# Strongbox WAL archive and restore for {database.name} ({database.pk}),
# environment {database.environment.name}; generated by `manage.py pitr_setup`.
# PostgreSQL (postgresql.conf):
#   archive_command = '<this script> archive %p %f'
#   restore_command = '<this script> fetch %f %p'   (recovery only)
# It carries Strongbox's environment; keep it readable by PostgreSQL's user only.
set -eu
{exports}
# No cd: PostgreSQL gives %p relative to the data directory it runs the command in.
case "${{1:-}}" in
  archive) {archive} "$2" "$3" ;;
  fetch) exec {run} fetch_wal --database {db_id} "$2" "$3" ;;
  *) echo "usage: $0 archive %p %f | fetch %f %p" >&2; exit 2 ;;
esac
"""
    return WalSetup(
        database=database, script_name=script_name(database), environment=env, script=script
    )


# The modules PostgreSQL's commands import before Django (manage.py's fast paths).
FAST_PATH_MODULES = ("pitr/__init__.py", "pitr/wal_async.py", "pitr/wal_spool.py")


def compile_fast_path() -> None:
    """Byte-compile the fast path's modules. The wrapper runs Python with
    PYTHONDONTWRITEBYTECODE (PostgreSQL's user must not write into the code), so without
    this every archive_command compiles them again: ~5 ms of each call's ~10. A code
    directory we cannot write to is left as it is."""
    for relative in FAST_PATH_MODULES:
        source = Path(settings.BASE_DIR) / relative
        try:
            py_compile.compile(str(source), doraise=True)
        except (OSError, py_compile.PyCompileError) as exc:
            logger.warning("could not byte-compile %s: %s", source, exc)


def write_wal_setup(setup: WalSetup, directory: Path) -> Path:
    """Write the script 0700 into ``directory`` (created 0700), replacing one there, and
    byte-compile what it runs before Django."""
    compile_fast_path()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / setup.script_name
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with os.fdopen(fd, "w") as handle:
        handle.write(setup.script)
    os.chmod(tmp, 0o700)
    os.replace(tmp, path)
    return path


def archive_command_line(database: Database) -> str:
    """The archive_command without a wrapper (for the PITR card): the environment must then
    come from the cluster's ``environment`` file (Debian) or the service unit."""
    manage = Path(settings.BASE_DIR).resolve() / "manage.py"
    argv = [sys.executable, str(manage), "archive_wal", "--database", str(database.pk)]
    return " ".join(shlex.quote(a) for a in argv) + " %p %f"
