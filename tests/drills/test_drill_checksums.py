"""PostgreSQL drills compare each restored table's checksum with the one the backup read from
its dump stream: a good backup passes with them compared; a backup whose artifact was
changed inside one table's data fails naming that table."""

import hashlib
import os
import secrets
from pathlib import Path

import pytest
import zstandard
from psycopg import sql

from backups.engines.postgresql import PostgreSQLEngine
from backups.keys import artifact_keys
from backups.models import Backup, Encryption
from backups.pipeline import open_artifact
from drills.models import DrillStatus
from tests.backups.helpers import database_for, run_backup_now
from tests.drills.helpers import database_exists, run_drill_now
from tests.fixtures.databases import fill_postgres, unavailable
from tests.restores.helpers import artifact_path

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _backed_up(environment, spec, rows=50):
    fill_postgres(spec, rows=rows)
    database = database_for(environment, spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    assert backup.status == "completed", backup.message
    return database, backup


def _rewrite_dump(backup: Backup, change) -> None:
    """Decrypt and decompress the artifact, change its pg_dump bytes, store it again as a
    plain zstd artifact with a size and checksum that agree (so only the load and the
    comparison can notice)."""
    path = artifact_path(backup)
    with path.open("rb") as raw:
        plain = open_artifact(raw, **artifact_keys(backup.organisation, backup.key_id)).read()
    changed = change(plain)
    assert changed != plain
    data = zstandard.ZstdCompressor().compress(changed)
    path.write_bytes(data)
    Backup.objects.filter(pk=backup.pk).update(
        size=len(data),
        checksum_sha256=hashlib.sha256(data).hexdigest(),
        encrypted=False,
        encryption=Encryption.NONE,
        key_id="",
    )
    backup.copies.update(size=len(data))


def test_a_good_backup_passes_with_every_table_checksum_compared(
    environment, destination, postgres_spec
):
    with PostgreSQLEngine().connect(postgres_spec) as conn:
        conn.execute("CREATE TABLE prices (id integer, amount money)")
        conn.execute("INSERT INTO prices VALUES (1, 12.5)")
    database, backup = _backed_up(environment, postgres_spec)
    assert set(backup.table_checksums) == {
        "public.customers",
        "public.documents",
        "public.measurements",
        "public.prices",
    }
    assert (
        backup.row_counts["public.customers"]
        == backup.table_checksums["public.customers"]["rows"]
        == 50
    )

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.PASSED, drill.message
    assert "4 table checksum(s) match" not in drill.message
    assert "3 table checksum(s) match" in drill.message
    assert "checksum not compared for 1 table(s)" in drill.message
    assert "money" in drill.message and "public.prices" in drill.message


def test_a_byte_changed_inside_one_tables_data_fails_the_drill_naming_that_table(
    environment, destination, postgres_spec
):
    database, backup = _backed_up(environment, postgres_spec)
    # Row 7 of customers: "7\tAda #7\t…" in the COPY text; one letter changed, same length.
    _rewrite_dump(backup, lambda plain: plain.replace(b"\x007\tAda #7\t", b"\x007\tAdb #7\t", 1))

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.FAILED, drill.message
    assert "table public.customers: checksum differs" in drill.message
    assert "documents" not in drill.message and "measurements" not in drill.message
    assert not database_exists(postgres_spec, drill.throwaway_name)


def test_a_row_cut_out_of_one_table_fails_the_drill_with_both_counts(
    environment, destination, postgres_spec
):
    database, backup = _backed_up(environment, postgres_spec)

    def drop_row_7(plain: bytes) -> bytes:
        # The row's chunk: a sign byte, its length (4 bytes, little-endian), then the row.
        start = plain.index(b"\x007\tAda #7\t") + 1
        header = start - 5
        assert plain[header] == 0
        length = int.from_bytes(plain[header + 1 : start], "little")
        assert plain[start + length - 1 : start + length] == b"\n"
        return plain[:header] + plain[start + length :]

    _rewrite_dump(backup, drop_row_7)

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.FAILED, drill.message
    assert "public.customers: 50 recorded, 49 restored" in drill.message
    assert "checksum" not in drill.message  # the count already says it
    assert "documents" not in drill.message


CONFIG_EXTENSION_SQL = """
CREATE TABLE ext_settings (id integer PRIMARY KEY, origin text NOT NULL);
INSERT INTO ext_settings VALUES (1, 'extension'), (2, 'extension');
SELECT pg_catalog.pg_extension_config_dump('ext_settings', 'WHERE origin <> ''extension''');
CREATE TABLE ext_own (id integer);
INSERT INTO ext_own VALUES (1), (2), (3);
"""


@pytest.fixture
def config_table_extension(postgres_spec):
    """A real extension with a configuration table (as PostGIS's spatial_ref_sys) and a
    table of its own, installed into the server's extension directory for this test."""
    with PostgreSQLEngine().connect(postgres_spec) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    directory = Path(f"/usr/share/postgresql/{major}/extension")
    if not os.access(directory, os.W_OK):
        unavailable(f"cannot install a test extension into {directory}")
    name = f"sbx_cfg_{secrets.token_hex(4)}"
    files = [directory / f"{name}.control", directory / f"{name}--1.0.sql"]
    files[0].write_text("default_version = '1.0'\nrelocatable = false\nschema = public\n")
    files[1].write_text(CONFIG_EXTENSION_SQL)
    yield name
    for file in files:
        file.unlink(missing_ok=True)


def test_an_extensions_tables_compare_as_pg_dump_dumps_them(
    environment, destination, postgres_spec, config_table_extension
):
    """pg_dump dumps only the user's rows of an extension's configuration table and none of
    its own tables; CREATE EXTENSION in the restored copy makes the rest. Counts and
    checksums follow the same rules on both sides, so the drill passes."""
    with PostgreSQLEngine().connect(postgres_spec) as conn:
        conn.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(config_table_extension)))
        conn.execute("INSERT INTO ext_settings VALUES (10, 'user'), (11, 'user'), (12, 'user')")
    database, backup = _backed_up(environment, postgres_spec)

    assert backup.row_counts["public.ext_settings"] == 3
    assert backup.row_counts.get("public.ext_own", 0) == 0
    assert "sha256" in backup.table_checksums["public.ext_settings"]
    assert PostgreSQLEngine().row_counts(postgres_spec) == backup.row_counts

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.PASSED, drill.message
    assert "ext_settings" not in drill.message  # compared, and equal
    assert "4 table checksum(s) match" in drill.message, drill.message
