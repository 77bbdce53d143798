"""Files engine: a tar stream of a directory, links kept as links, safe extraction."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from backups.engines import ConnectionSpec, DumpFailed, RestoreFailed, get_engine
from tests.fixtures.databases import dump_to_bytes

engine = get_engine("files")


def spec_for(path: Path) -> ConnectionSpec:
    return ConnectionSpec(engine="files", name=str(path))


def make_tree(root: Path) -> None:
    (root / "docs" / "nested" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "docs" / "report.bin").write_bytes(bytes(range(256)) * 40)
    (root / "docs" / "nested" / "ünïcødé.txt").write_text("grüße 🎉\n", encoding="utf-8")
    (root / "docs" / "nested" / "deeper" / "empty-file").write_bytes(b"")
    (root / "link-to-a").symlink_to("a.txt")
    (root / "docs" / "link-to-dir").symlink_to("nested")


def snapshot(root: Path) -> dict[str, tuple[str, str | bytes]]:
    """Every entry as (kind, content or link target), keyed by relative path."""
    tree: dict[str, tuple[str, str | bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                tree[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                tree[rel] = ("dir", "")
            else:
                tree[rel] = ("file", path.read_bytes())
    return tree


def malicious_tar(*names: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return buffer.getvalue()


def test_a_tree_round_trips_byte_identical_with_symlinks_kept_as_links(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    make_tree(source)

    data, recorded = dump_to_bytes(spec_for(source))
    engine.restore(spec_for(target), io.BytesIO(data))

    assert snapshot(target) == snapshot(source)
    assert (target / "link-to-a").is_symlink()
    assert recorded == {"files": 4, "directories": 4, "symlinks": 2}
    assert engine.row_counts(spec_for(target)) == recorded


def test_it_estimates_the_size_as_the_sum_of_file_sizes(tmp_path: Path) -> None:
    make_tree(tmp_path)

    assert engine.estimate_size(spec_for(tmp_path)) == 6 + 256 * 40 + len("grüße 🎉\n".encode())


def test_a_symlink_pointing_outside_is_stored_as_a_link_and_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("TOP SECRET CONTENT")
    source = tmp_path / "source"
    source.mkdir()
    (source / "escape").symlink_to(secret)
    (source / "escape-dir").symlink_to("..")

    data, _ = dump_to_bytes(spec_for(source))

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"escape", "escape-dir"}
    assert members["escape"].issym() and members["escape"].linkname == str(secret)
    assert members["escape-dir"].issym() and members["escape-dir"].linkname == ".."
    assert b"TOP SECRET CONTENT" not in data


def test_restoring_links_that_point_outside_is_refused(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    (source / "escape").symlink_to("/etc/passwd")
    data, _ = dump_to_bytes(spec_for(source))

    with pytest.raises(RestoreFailed, match="refused an unsafe archive member"):
        engine.restore(spec_for(target), io.BytesIO(data))

    assert not (target / "escape").is_symlink()


@pytest.mark.parametrize("name", ["../escaped.txt", "/tmp/sbx-absolute-escape.txt", "a/../../x"])
def test_a_malicious_archive_with_paths_outside_is_refused(tmp_path: Path, name: str) -> None:
    target = tmp_path / "inner" / "target"
    target.mkdir(parents=True)

    with pytest.raises(RestoreFailed, match="refused an unsafe archive member"):
        engine.restore(spec_for(target), io.BytesIO(malicious_tar(name)))

    assert list(target.iterdir()) == []
    assert not (tmp_path / "inner" / "escaped.txt").exists()
    assert not (tmp_path / "x").exists()
    assert not Path("/tmp/sbx-absolute-escape.txt").exists()


def test_killing_the_dump_midway_makes_finish_raise(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"chunk-{i}.bin").write_bytes(os.urandom(256 * 1024))
    dump = engine.open_dump(spec_for(tmp_path))
    assert dump.stdout.read(64 * 1024)

    dump.kill()

    with pytest.raises(DumpFailed, match="aborted"):
        dump.finish()


def test_a_missing_directory_fails_the_dump_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(DumpFailed, match="gone' is not a directory"):
        engine.open_dump(spec_for(tmp_path / "gone"))
