"""MySQL/MariaDB engine against the real MariaDB server and mariadb-dump/mariadb."""

from __future__ import annotations

import io
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from backups.engines import ConnectionSpec, DumpFailed, EngineError, RestoreFailed, get_engine
from backups.engines.mysql import MySQLEngine, write_defaults_file
from restores import loading
from tests.fixtures.databases import dump_to_bytes, fill_mariadb, table_checksums

pytest_plugins = ["tests.fixtures.databases"]

engine = MySQLEngine("mariadb")
SECRET = 'p@ss "w\\ord#; with spaces'


def remote_spec(**changes: object) -> ConnectionSpec:
    fields = {"engine": "mysql", "host": "db.internal", "port": 3307, "user": "backup"}
    fields |= {"password": SECRET, "name": "shop", **changes}
    return ConnectionSpec(**fields)  # type: ignore[arg-type]


def execute(spec: ConnectionSpec, *statements: str) -> None:
    conn = engine.connect(spec)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture
def password_user(mariadb_spec: ConnectionSpec) -> Iterator[ConnectionSpec]:
    """A user with a password full of option-file metacharacters, allowed on mariadb_spec."""
    user = f"sbx_{uuid.uuid4().hex[:8]}"
    quoted_password = SECRET.replace("\\", "\\\\").replace("'", "\\'")
    execute(
        mariadb_spec,
        f"CREATE USER '{user}'@'%' IDENTIFIED BY '{quoted_password}'",
        f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{quoted_password}'",
        f"GRANT ALL ON `{mariadb_spec.name}`.* TO '{user}'@'%'",
        f"GRANT ALL ON `{mariadb_spec.name}`.* TO '{user}'@'localhost'",
    )
    yield ConnectionSpec(**{**mariadb_spec.__dict__, "user": user, "password": SECRET})
    execute(mariadb_spec, f"DROP USER '{user}'@'%'", f"DROP USER '{user}'@'localhost'")


# -- pure argv builders -----------------------------------------------------------------------


def test_dump_argv_takes_one_transaction_with_routines_and_no_password() -> None:
    argv = engine.dump_argv(remote_spec(), tool="mysqldump", defaults_file="/run/x.cnf")

    assert argv[:2] == ["mysqldump", "--defaults-extra-file=/run/x.cnf"]
    expected = {"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob"}
    assert expected | {"--default-character-set=utf8mb4"} <= set(argv)
    assert "--databases" not in argv and argv[-1] == "shop"
    assert not any(SECRET in arg for arg in argv)


def test_restore_argv_feeds_the_client_with_the_defaults_file_first() -> None:
    argv = engine.restore_argv(remote_spec(), defaults_file="/run/x.cnf")

    assert argv[:2] == ["mariadb", "--defaults-extra-file=/run/x.cnf"]
    assert "--host=db.internal" in argv and "--port=3307" in argv and argv[-1] == "shop"
    assert not any(SECRET in arg for arg in argv)


def test_the_defaults_file_is_private_and_holds_the_password(tmp_path: os.PathLike[str]) -> None:
    path = write_defaults_file(remote_spec(), directory=str(tmp_path))

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, encoding="utf-8") as fh:
        assert fh.read() == '[client]\npassword="p@ss \\"w\\\\ord#; with spaces"\n'


def test_the_registry_serves_mysql_and_mariadb_with_the_same_engine() -> None:
    assert get_engine("mysql").name == "mysql"
    assert type(get_engine("mysql")) is type(get_engine("mariadb"))


# -- against the server -----------------------------------------------------------------------


@pytest.mark.mariadb
def test_it_reports_version_size_and_row_counts(mariadb_spec: ConnectionSpec) -> None:
    expected = fill_mariadb(mariadb_spec)

    assert "MariaDB" in engine.server_version(mariadb_spec)
    assert (engine.estimate_size(mariadb_spec) or 0) > 0
    assert engine.row_counts(mariadb_spec) == expected


@pytest.mark.mariadb
def test_a_dump_restores_into_a_fresh_database_with_identical_content(
    make_mariadb_database: Callable[[], ConnectionSpec],
) -> None:
    source, target = make_mariadb_database(), make_mariadb_database()
    expected = fill_mariadb(source)
    execute(
        source,
        "CREATE PROCEDURE bump() UPDATE measurements SET big = big + 1",
        "CREATE TRIGGER stamp BEFORE INSERT ON documents FOR EACH ROW SET NEW.flag = 'trg'",
    )

    data, recorded = dump_to_bytes(source)
    loading.load(target, io.BytesIO(data))

    assert recorded == expected
    assert engine.row_counts(target) == expected
    assert table_checksums(target) == table_checksums(source)
    assert (
        f"`{source.name}`"
        not in data.decode("utf-8", errors="replace").split("-- Dump completed")[0]
    )
    conn = engine.connect(target)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT routine_name FROM information_schema.routines WHERE routine_schema = %s",
            (target.name,),
        )
        assert cur.fetchall() == (("bump",),)
        cur.execute(
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s",
            (target.name,),
        )
        assert cur.fetchall() == (("stamp",),)
    conn.close()


@pytest.mark.mariadb
def test_a_password_with_metacharacters_works_through_the_defaults_file(
    password_user: ConnectionSpec, make_mariadb_database: Callable[[], ConnectionSpec]
) -> None:
    expected = fill_mariadb(password_user, rows=20)

    engine.check_connection(password_user)
    data, recorded = dump_to_bytes(password_user)

    assert recorded == expected
    target = make_mariadb_database()
    loading.load(target, io.BytesIO(data))
    assert engine.row_counts(target) == expected


@pytest.mark.mariadb
def test_a_wrong_password_is_reported_clearly(password_user: ConnectionSpec) -> None:
    wrong = ConnectionSpec(**{**password_user.__dict__, "password": "wrong"})

    with pytest.raises(EngineError, match=r"cannot connect to .*Access denied for user"):
        engine.check_connection(wrong)
    with pytest.raises(DumpFailed, match="Access denied"):
        engine.open_dump(wrong)


@pytest.mark.mariadb
def test_a_missing_database_fails_the_dump_with_a_clear_message(
    mariadb_spec: ConnectionSpec,
) -> None:
    gone = ConnectionSpec(**{**mariadb_spec.__dict__, "name": "sbx_test_gone"})

    with pytest.raises(DumpFailed, match="Unknown database 'sbx_test_gone'"):
        engine.open_dump(gone)


@pytest.mark.mariadb
def test_a_dump_the_tool_rejects_fails_with_its_stderr_tail(mariadb_spec: ConnectionSpec) -> None:
    execute(
        mariadb_spec,
        "CREATE TABLE base (id int)",
        "CREATE VIEW broken AS SELECT id FROM base",
        "DROP TABLE base",
    )
    dump = engine.open_dump(mariadb_spec)
    dump.stdout.read()

    with pytest.raises(DumpFailed, match=r"mariadb-dump exited with status \d+: .*broken"):
        dump.finish()


@pytest.mark.mariadb
@pytest.mark.slow
def test_killing_the_dump_midway_makes_finish_raise(mariadb_spec: ConnectionSpec) -> None:
    execute(
        mariadb_spec,
        "CREATE TABLE big (id int PRIMARY KEY, filler longtext)",
        "INSERT INTO big SELECT seq, REPEAT(MD5(seq), 320) FROM seq_1_to_1200",
    )
    dump = engine.open_dump(mariadb_spec)
    assert dump.stdout.read(64 * 1024)

    dump.kill()

    with pytest.raises(DumpFailed, match="aborted"):
        dump.finish()


@pytest.mark.mariadb
def test_restoring_garbage_fails_with_the_clients_stderr(mariadb_spec: ConnectionSpec) -> None:
    with pytest.raises(RestoreFailed, match=r"(?s)mariadb exited with status 1: .*ERROR 1064"):
        loading.load(mariadb_spec, io.BytesIO(b"this is not SQL;\n"))


def test_a_server_that_is_down_is_reported_clearly() -> None:
    spec = ConnectionSpec(engine="mariadb", host="127.0.0.1", port=1, user="x", name="shop")

    with pytest.raises(EngineError, match="cannot connect to mariadb at 127.0.0.1:1"):
        engine.check_connection(spec)


# -- row counts read from the dump stream -------------------------------------------------------

AWKWARD_VALUES = [
    "a ( paren",
    "it's ),( not a tuple",
    "backslash at the end \\",
    "\\' both (",
    "line\nbreak\r\n(",
    "",
    None,
]


@pytest.mark.mariadb
def test_counts_from_the_stream_equal_count_star_for_awkward_values_and_names(
    make_mariadb_database: Callable[[], ConnectionSpec],
) -> None:
    source, target = make_mariadb_database(), make_mariadb_database()
    expected = fill_mariadb(source)
    execute(
        source,
        "CREATE TABLE `odd(name``'s` (id int PRIMARY KEY, body text, raw blob,"
        " `hidden(col` int INVISIBLE DEFAULT 7)",
        "CREATE TABLE empty_one (id int)",
        "CREATE TABLE derived (id int, twice int AS (id * 2) VIRTUAL)",
        "INSERT INTO derived (id) SELECT seq FROM seq_1_to_1500",
        "CREATE VIEW a_view AS SELECT id FROM derived",
    )
    conn = engine.connect(source)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO `odd(name``'s` (id, body, raw) VALUES (%s, %s, %s)",
            [(i, value, b"(',\\\n" * i) for i, value in enumerate(AWKWARD_VALUES * 40, start=1)],
        )
    conn.close()
    expected |= {"odd(name`'s": len(AWKWARD_VALUES) * 40, "empty_one": 0, "derived": 1500}

    dump = engine.open_dump(source)
    with dump:
        chunks = []
        while chunk := dump.stdout.read(4099):  # cuts lines and strings anywhere
            chunks.append(chunk)
        dump.finish()
    loading.load(target, io.BytesIO(b"".join(chunks)))

    assert dump.row_counts == expected
    assert engine.row_counts(source) == expected
    assert engine.row_counts(target) == expected


@pytest.mark.mariadb
def test_writes_during_the_dump_do_not_make_the_counts_disagree_with_its_data(
    make_mariadb_database: Callable[[], ConnectionSpec],
) -> None:
    source, target = make_mariadb_database(), make_mariadb_database()
    execute(
        source,
        "CREATE TABLE first (id int AUTO_INCREMENT PRIMARY KEY, filler text)",
        "CREATE TABLE second (id int AUTO_INCREMENT PRIMARY KEY, filler text)",
        "INSERT INTO first (filler) SELECT REPEAT(MD5(seq), 20) FROM seq_1_to_3000",
        "INSERT INTO second (filler) SELECT REPEAT(MD5(seq), 20) FROM seq_1_to_3000",
    )
    stop, written = threading.Event(), []

    def write() -> None:
        conn = engine.connect(source)
        try:
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("INSERT INTO first (filler) VALUES ('during')")
                    cur.execute("INSERT INTO second (filler) VALUES ('during')")
                    cur.execute("DELETE FROM second ORDER BY id LIMIT 1")
                    written.append(1)
        finally:
            conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_until(lambda: len(written) >= 5)
        dump = engine.open_dump(source)
        with dump:
            data = dump.stdout.read(8192)
            # The tool is inside its snapshot once it writes a table's data; let the writer
            # commit more before reading the rest.
            while b"LOCK TABLES" not in data:
                data += dump.stdout.read(8192)
            during = len(written)
            wait_until(lambda: len(written) >= during + 20)
            data += dump.stdout.read()
            dump.finish()
    finally:
        stop.set()
        writer.join()
    loading.load(target, io.BytesIO(data))

    restored = engine.row_counts(target)
    assert dump.row_counts == restored
    assert engine.row_counts(source)["first"] > restored["first"]  # the writes did overlap


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
