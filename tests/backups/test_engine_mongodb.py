"""MongoDB engine: without the MongoDB Database Tools it is unavailable, never a crash."""

from __future__ import annotations

import shutil

import pytest

from backups.engines import ConnectionSpec, EngineUnavailable, get_engine

engine = get_engine("mongodb")
SPEC = ConnectionSpec(
    engine="mongodb",
    host="mongo.internal",
    port=27017,
    user="backup",
    password="hunter2",
    name="app",
)

needs_no_mongodump = pytest.mark.skipif(
    shutil.which("mongodump") is not None, reason="mongodump is installed on this machine"
)


@needs_no_mongodump
def test_it_lists_mongodump_as_missing() -> None:
    assert "mongodump" in engine.missing_tools()


@needs_no_mongodump
def test_opening_a_dump_says_how_to_fix_the_worker() -> None:
    with pytest.raises(EngineUnavailable) as failure:
        engine.open_dump(SPEC)

    assert str(failure.value) == (
        "mongodump is not installed on this worker; "
        "install the MongoDB Database Tools to back up MongoDB"
    )


def test_dump_argv_streams_an_archive_and_keeps_the_password_out_of_argv() -> None:
    argv = engine.dump_argv(SPEC, config_file="/run/m.yaml")

    assert argv[:3] == ["mongodump", "--archive", "--config=/run/m.yaml"]
    assert "--db=app" in argv and "--username=backup" in argv
    assert not any("hunter2" in arg for arg in argv)
