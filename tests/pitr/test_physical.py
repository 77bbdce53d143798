"""The pure parts of the physical engine: argv, WAL names, labels, pg_waldump, settings."""

import io
import tarfile
from datetime import UTC, datetime

import pytest

from backups.engines import ConnectionSpec
from pitr import physical


def spec(**kw):
    return ConnectionSpec(
        engine="postgresql", host="db.internal", port=5433, user="backup", password="s3cret", **kw
    )


def test_basebackup_argv_streams_a_tar_without_wal_and_keeps_the_password_out():
    argv = physical.basebackup_argv(spec(), label="nightly", pg_bin="/opt/pg/bin")
    assert argv[0] == "/opt/pg/bin/pg_basebackup"
    assert {"--pgdata=-", "--format=tar", "--wal-method=none", "--no-password"} <= set(argv)
    assert "--label=nightly" in argv
    assert "--host=db.internal" in argv and "--port=5433" in argv and "--username=backup" in argv
    assert not any("s3cret" in item for item in argv)


def test_wal_names_are_classified_and_anything_else_is_refused():
    segment = physical.parse_wal_name("0000000200000001000000FF")
    assert (segment.kind, segment.timeline, segment.number) == ("segment", 2, 0x1FF)
    assert physical.parse_wal_name("00000002.history").kind == "history"
    assert physical.parse_wal_name("000000010000000000000002.00000028.backup").number == 2
    assert physical.parse_wal_name("000000010000000000000003.partial").kind == "partial"
    for bad in ("../../etc/passwd", "00000001000000000000000g", "000000010000000000000003.zst"):
        with pytest.raises(ValueError):
            physical.parse_wal_name(bad)


def test_segment_numbers_roll_over_log_ids_according_to_the_segment_size():
    assert physical.segment_name(1, 0x100) == "000000010000000100000000"
    assert physical.parse_wal_name("000000010000000100000000").number == 0x100
    big = 64 * 1024 * 1024
    assert physical.parse_wal_name("000000010000000100000000", big).number == 0x40
    assert physical.segment_number_of_lsn("1/2000028") == 0x102


def test_backup_labels_and_history_files_are_parsed():
    text = (
        "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
        "STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n"
        "START TIME: 2026-11-23 13:42:56 UTC\n"
        "LABEL: quant-gov-dashboard-staging-base\n"
    )
    fields = physical.parse_backup_label(text)
    assert physical.label_location(fields["START WAL LOCATION"]) == (
        "0/2000028",
        "000000010000000000000002",
    )
    assert physical.label_time(fields["START TIME"]) == datetime(
        2026, 11, 23, 13, 42, 56, tzinfo=UTC
    )
    assert physical.label_time("2026-11-23 13:42:56 CET") is None
    assert fields["LABEL"] == "quant-gov-dashboard-staging-base"


def test_transaction_times_come_from_commit_and_abort_records():
    output = (
        "rmgr: Transaction len (rec/tot): 34/34, tx: 725, lsn: 0/04000028, prev 0/03000E58, "
        "desc: COMMIT 2026-11-23 13:43:28.719362 UTC\n"
        "rmgr: Transaction len (rec/tot): 34/34, tx: 726, lsn: 0/040000C8, prev 0/04000088, "
        "desc: ABORT 2026-11-23 13:43:34.603804 UTC\n"
        "rmgr: Transaction len (rec/tot): 34/34, tx: 727, lsn: 0/040000F8, prev 0/040000C8, "
        "desc: COMMIT_PREPARED 9: 2026-11-23 13:43:40 UTC; inval msgs: catcache 7\n"
    )
    first, last = physical.parse_xact_times(output)
    assert first == datetime(2026, 11, 23, 13, 43, 28, 719362, tzinfo=UTC)
    assert last == datetime(2026, 11, 23, 13, 43, 40, tzinfo=UTC)
    assert physical.parse_xact_times("rmgr: XLOG desc: SWITCH") == (None, None)


def test_backup_label_is_read_from_the_head_of_the_tar_stream():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("backup_label", b"LABEL: x\n"), ("PG_VERSION", b"15\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    head = buffer.getvalue()[:2048]
    assert physical.read_tar_member(head, "backup_label") == b"LABEL: x\n"
    assert physical.read_tar_member(head, "missing") is None


def test_recovery_settings_quote_values_and_switch_archiving_off():
    command = physical.restore_command(
        [
            "/venv/bin/python",
            "/srv/it's here/manage.py",
            "fetch_wal",
            "--database",
            "42",
            "%f",
            "%p",
        ]
    )
    assert command.endswith("fetch_wal --database 42 %f %p")
    assert "'/srv/it'\"'\"'s here/manage.py'" in command
    text = physical.recovery_settings(
        restore_command=command,
        target_time=datetime(2026, 11, 23, 14, 5, tzinfo=UTC),
        port=6543,
        socket_dir="/tmp/sock",
    )
    assert "recovery_target_time = '2026-11-23T14:05:00+00:00'" in text
    assert "recovery_target_action = 'promote'" in text
    assert "archive_mode = 'off'" in text
    assert "port = '6543'" in text
    # A single quote inside a value is doubled, as postgresql.conf wants.
    assert "''/srv/it''\"''\"''s here/manage.py''" in text


def test_extraction_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "PG_VERSION").write_text("15\n")
    with pytest.raises(physical.RecoveryFailed, match="not empty"):
        physical.extract_base_backup(io.BytesIO(b""), tmp_path / "data")
