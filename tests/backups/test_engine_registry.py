"""The engine registry."""

from __future__ import annotations

import pytest

from backups.engines import Engine, EngineError, engine_names, get_engine


def test_every_engine_is_registered_under_its_own_name() -> None:
    assert engine_names() == ["files", "mariadb", "mongodb", "mysql", "postgresql", "sqlite"]
    for name in engine_names():
        engine = get_engine(name)
        assert isinstance(engine, Engine)
        assert engine.name == name
        assert engine.extension


def test_an_unknown_engine_is_an_engine_error_naming_the_known_ones() -> None:
    with pytest.raises(EngineError, match="unknown engine 'oracle'; known engines: files, "):
        get_engine("oracle")
