"""MongoDB: mongodump --archive. Without the MongoDB Database Tools the engine reports itself
unavailable, and backups of MongoDB become "not supported" on this worker instead of crashing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import BinaryIO

from .base import (
    ConnectionSpec,
    Dump,
    Engine,
    EngineUnavailable,
    ProcessDump,
    resolved,
    run_restore,
)

NOT_INSTALLED = (
    "mongodump is not installed on this worker; "
    "install the MongoDB Database Tools to back up MongoDB"
)
RESTORE_NOT_INSTALLED = (
    "mongorestore is not installed on this worker; "
    "install the MongoDB Database Tools to restore MongoDB"
)
NO_DRIVER = "pymongo is not installed on this worker; it is needed to inspect MongoDB servers"


def write_config_file(spec: ConnectionSpec) -> str:
    """A 0600 YAML file for --config carrying the password. Caller deletes it."""
    fd, path = tempfile.mkstemp(prefix="strongbox-mongo-", suffix=".yaml")
    escaped = spec.password.replace("\\", "\\\\").replace('"', '\\"')
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f'password: "{escaped}"\n')
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class MongoDBEngine(Engine):
    name = "mongodb"
    extension = "archive"
    tools = ("mongodump", "mongorestore")

    def dump_argv(
        self, spec: ConnectionSpec, *, config_file: str | None = None, **kw: object
    ) -> list[str]:
        return ["mongodump", "--archive", *self._connection_args(spec, config_file)]

    def restore_argv(
        self, spec: ConnectionSpec, *, config_file: str | None = None, **kw: object
    ) -> list[str]:
        return ["mongorestore", "--archive", "--drop", *self._connection_args(spec, config_file)]

    @staticmethod
    def _connection_args(spec: ConnectionSpec, config_file: str | None) -> list[str]:
        spec = resolved(spec)
        args = []
        if config_file:
            args.append(f"--config={config_file}")
        if spec.hostaddr or spec.host:
            args.append(f"--host={spec.hostaddr or spec.host}")
        if spec.port:
            args.append(f"--port={spec.port}")
        if spec.user:
            args.append(f"--username={spec.user}")
            args.append(f"--authenticationDatabase={spec.options.get('auth_source', 'admin')}")
        if spec.name:
            args.append(f"--db={spec.name}")
        return args

    def _require(self, tool: str = "mongodump") -> None:
        if tool in self.missing_tools():
            raise EngineUnavailable(
                NOT_INSTALLED
                if tool == "mongodump"
                else NOT_INSTALLED.replace("back up", "restore")
            )

    def check_connection(self, spec: ConnectionSpec) -> None:
        self._require()
        raise EngineUnavailable(NO_DRIVER)

    def server_version(self, spec: ConnectionSpec) -> str:
        raise EngineUnavailable(NO_DRIVER)

    def row_counts(self, spec: ConnectionSpec) -> dict[str, int]:
        return {}  # needs a driver; the dump is still taken without counts

    def open_dump(self, spec: ConnectionSpec) -> Dump:
        self._require("mongodump")
        config = write_config_file(spec) if spec.password else None
        return ProcessDump(
            self.dump_argv(spec, config_file=config),
            cleanups=[lambda: _remove(config)] if config else [],
        )

    def restore(self, spec: ConnectionSpec, stream: BinaryIO, *, jobs: int = 1) -> None:
        self._require("mongorestore")
        config = write_config_file(spec) if spec.password else None
        try:
            run_restore(self.restore_argv(spec, config_file=config), stream)
        finally:
            if config:
                _remove(config)

    def create_database(self, spec: ConnectionSpec) -> None:
        self._require()  # MongoDB creates databases on first write

    def drop_database(self, spec: ConnectionSpec) -> None:
        raise EngineUnavailable(NO_DRIVER)
