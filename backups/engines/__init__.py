"""Backup and restore engines, one module per database kind, looked up by engine name.

No Django imports in this package: services pass a ConnectionSpec and consume Dump streams.
"""

from __future__ import annotations

from .base import (
    ConnectionSpec,
    Dump,
    DumpFailed,
    Engine,
    EngineError,
    EngineUnavailable,
    RestoreFailed,
)
from .files import FilesEngine
from .mongodb import MongoDBEngine
from .mysql import MySQLEngine
from .postgresql import PostgreSQLEngine
from .sqlite import SQLiteEngine

ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        PostgreSQLEngine(),
        MySQLEngine("mysql"),
        MySQLEngine("mariadb"),
        SQLiteEngine(),
        FilesEngine(),
        MongoDBEngine(),
    )
}


def get_engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise EngineError(f"unknown engine {name!r}; known engines: {known}") from None


def engine_names() -> list[str]:
    return sorted(ENGINES)


__all__ = [
    "ENGINES",
    "ConnectionSpec",
    "Dump",
    "DumpFailed",
    "Engine",
    "EngineError",
    "EngineUnavailable",
    "RestoreFailed",
    "engine_names",
    "get_engine",
]
