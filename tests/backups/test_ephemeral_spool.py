"""The ephemeral spool: what it writes is ciphertext in an unnamed file, read back anywhere."""

import io
import os
from pathlib import Path

import pytest

from backups.ephemeral_spool import EphemeralSpool


def _open_files_in(directory: Path) -> list[Path]:
    """Regular files this process holds open under ``directory`` (linked or not)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(fd)
    return found


def test_what_is_written_reads_back_whole_and_from_any_position(tmp_path):
    data = os.urandom(3 * 1000 + 123)
    with EphemeralSpool(str(tmp_path), chunk_size=1000) as spool:
        for start in range(0, len(data), 777):
            spool.write(data[start : start + 777])
        reader = spool.reader()
        assert reader.read() == data
        for position in (0, 999, 1000, 1001, 2500, len(data) - 1, len(data)):
            reader.seek(position)
            assert reader.read(1500) == data[position : position + 1500]
        reader.seek(-10, io.SEEK_END)
        assert reader.read() == data[-10:]


def test_a_reader_sees_bytes_written_after_it_was_opened_and_can_be_bounded(tmp_path):
    with EphemeralSpool(str(tmp_path), chunk_size=64) as spool:
        spool.write(b"a" * 100)
        head = spool.reader(end=spool.size)
        growing = spool.reader()
        assert growing.read() == b"a" * 100
        spool.write(b"b" * 100)
        assert growing.read() == b"b" * 100
        assert head.read() == b"a" * 100
        assert io.BufferedReader(spool.reader()).read() == b"a" * 100 + b"b" * 100


def test_the_file_on_disk_has_no_name_and_holds_no_plaintext(tmp_path):
    marker = b"strongbox-secret-marker-" * 1000
    with EphemeralSpool(str(tmp_path), chunk_size=4096) as spool:
        spool.write(marker + b"PGDMP")
        spool.write(b"x" * 4096)  # seals the last chunk holding the marker
        assert list(tmp_path.iterdir()) == []
        (handle,) = _open_files_in(tmp_path)
        on_disk = handle.read_bytes()
        assert len(on_disk) >= len(marker)
        assert b"strongbox-secret-marker" not in on_disk
        assert b"PGDMP" not in on_disk
        assert (os.stat(handle).st_mode & 0o777) == 0o600
    assert _open_files_in(tmp_path) == []


def test_a_closed_spool_cannot_be_read(tmp_path):
    spool = EphemeralSpool(str(tmp_path), chunk_size=16)
    spool.write(b"0123456789abcdef0123")
    reader = spool.reader()
    spool.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read()
