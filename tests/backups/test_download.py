"""Downloading a backup (``GET /api/backups/{id}/download``): what an admin gets restores
into a new database with the same data; the stored bytes come with their checksum and the
command that decrypts them; a copy that does not match never completes; other roles and
other organisations get nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest
import zstandard

from audit.models import AuditEvent
from backups.age_format import generate_identity, identity_text
from backups.models import BackupStatus
from backups.services import age_keys_update
from organizations.models import Role
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import fill_postgres, table_checksums
from tests.restores.helpers import artifact_path

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

AGE = shutil.which("age")


def _url(backup, **query) -> str:
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/api/backups/{backup.id}/download" + (f"?{suffix}" if suffix else "")


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _pg_restore(dump: bytes, spec) -> None:
    subprocess.run(
        [
            "pg_restore",
            "--no-owner",
            "--no-acl",
            "-h",
            spec.host,
            "-p",
            str(spec.port),
            "-U",
            spec.user,
            "-d",
            spec.name,
        ],
        input=dump,
        check=True,
        capture_output=True,
        env={**os.environ, "PGPASSWORD": spec.password or ""},
    )


@pytest.fixture
def two_database_backups(environment, destination, make_postgres_database):
    """An environment with two PostgreSQL databases, each backed up once."""
    backups = {}
    for name, rows in (("orders", 300), ("billing", 40)):
        spec = make_postgres_database()
        fill_postgres(spec, rows=rows)
        database = database_for(environment, spec, name=name, slug=name)
        backup = run_backup_now(environment=environment, kind="database", database=database)
        assert backup.status == BackupStatus.COMPLETED, backup.message
        backups[name] = (backup, spec)
    return backups


def test_an_admin_downloads_a_database_backup_that_restores_into_a_new_database(
    organisation, client_for, two_database_backups, make_postgres_database
):
    backup, source = two_database_backups["billing"]
    assert backup.encrypted

    response = client_for(organisation, Role.ADMIN).get(_url(backup))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment") and f"{backup.name}.dump.zst" in disposition
    assert response["X-Strongbox-SHA256"] == backup.checksum_sha256
    dump = zstandard.ZstdDecompressor().stream_reader(_body(response)).read()
    assert dump.startswith(b"PGDMP")
    target = make_postgres_database()
    _pg_restore(dump, target)
    # This database's rows, not the other database's of the same environment.
    assert table_checksums(target) == table_checksums(source)
    assert table_checksums(target) != table_checksums(two_database_backups["orders"][1])
    (event,) = AuditEvent.objects.filter(action="backup.download")
    assert event.object_id == str(backup.id) and event.details["raw"] is False


def test_the_stored_bytes_come_with_their_size_checksum_and_how_to_read_them(
    organisation, client_for, two_database_backups
):
    backup, _ = two_database_backups["orders"]

    response = client_for(organisation, Role.ADMIN).get(_url(backup, raw="true"))

    assert response.status_code == 200
    body = _body(response)
    assert body == artifact_path(backup).read_bytes()
    assert int(response["Content-Length"]) == len(body) == backup.size
    assert hashlib.sha256(body).hexdigest() == response["X-Strongbox-SHA256"]
    assert response["X-Strongbox-Encryption"] == "aes-256-gcm"
    assert "without raw=1" in response["X-Strongbox-Decrypt"]
    assert f"{backup.name}.dump.zst.sbxenc" in response["Content-Disposition"]


def test_an_age_backup_downloaded_raw_decrypts_with_the_age_tool_to_what_the_server_hands_out(
    organisation, environment, destination, client_for, make_postgres_database, tmp_path
):
    identity = generate_identity()
    age_keys_update(
        organisation=organisation,
        recipients=[identity.recipient],
        identity=identity_text(identity),
    )
    spec = make_postgres_database()
    fill_postgres(spec, rows=60)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, spec)
    )
    assert backup.encryption == "age", backup.message
    client = client_for(organisation, Role.ADMIN)

    raw = client.get(_url(backup, raw=1))
    decrypted = _body(client.get(_url(backup)))

    assert raw.status_code == 200
    hint = raw["X-Strongbox-Decrypt"]
    assert hint.startswith("age --decrypt -i ") and hint.endswith(f"{backup.name}.dump.zst.age")
    artifact = tmp_path / f"{backup.name}.dump.zst.age"
    artifact.write_bytes(_body(raw))
    if AGE is None and os.environ.get("CI") != "true":
        pytest.skip("the age tool is not installed")
    key = tmp_path / "key.txt"
    key.write_text(identity_text(identity) + "\n")
    out = subprocess.run(
        [AGE or "age", "--decrypt", "-i", str(key), str(artifact)], capture_output=True, check=True
    )
    assert out.stdout == decrypted
    assert zstandard.ZstdDecompressor().stream_reader(decrypted).read().startswith(b"PGDMP")


def test_stored_bytes_that_do_not_match_their_backup_never_complete(
    organisation, client_for, two_database_backups
):
    backup, _ = two_database_backups["orders"]
    path = artifact_path(backup)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last byte: only the final check can see it
    path.write_bytes(bytes(data))

    response = client_for(organisation, Role.ADMIN).get(_url(backup, raw="true"))

    assert response.status_code == 200  # the headers went out before the end was read
    received = []
    with pytest.raises(Exception, match="does not match the backup"):
        for chunk in response.streaming_content:
            received.append(chunk)
    assert len(b"".join(received)) < len(data)


def test_a_tampered_encrypted_backup_is_refused_before_anything_is_sent(
    organisation, client_for, two_database_backups
):
    backup, _ = two_database_backups["orders"]
    path = artifact_path(backup)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside its only chunk, opened before the answer starts
    path.write_bytes(bytes(data))

    response = client_for(organisation, Role.ADMIN).get(_url(backup))

    assert response.status_code == 409
    assert "cannot be decrypted" in response.json()["error"]["message"]


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_only_admins_download(organisation, client_for, two_database_backups, role):
    backup, _ = two_database_backups["orders"]

    response = client_for(organisation, role).get(_url(backup))

    assert response.status_code == 403


def test_another_organisations_backup_is_not_found(
    other_organisation, client_for, two_database_backups
):
    backup, _ = two_database_backups["orders"]

    response = client_for(other_organisation, Role.ADMIN).get(_url(backup))

    assert response.status_code == 404


def test_a_backup_that_did_not_complete_and_a_bad_raw_flag_are_refused_by_name(
    organisation, client_for, two_database_backups
):
    backup, _ = two_database_backups["orders"]
    client = client_for(organisation, Role.ADMIN)

    bad_flag = client.get(_url(backup, raw="maybe"))
    backup.status = BackupStatus.FAILED
    backup.save(update_fields=["status"])
    failed = client.get(_url(backup))

    assert bad_flag.status_code == 400 and "raw" in bad_flag.json()["error"]["fields"]
    assert failed.status_code == 409
    assert "Only a completed backup can be downloaded" in failed.json()["error"]["message"]


def test_the_backup_page_offers_the_download_to_admins_only(
    client, owner, viewer, two_database_backups
):
    backup, _ = two_database_backups["billing"]
    page = f"/backups/{backup.id}/"
    download = f"/backups/{backup.id}/download/"

    client.force_login(owner)
    html = client.get(page).content.decode()
    answer = client.get(download)
    raw = client.get(download + "?raw=1")

    assert 'data-testid="download"' in html and 'data-testid="download-raw"' in html
    assert answer.status_code == 200
    assert _body(answer).startswith(b"\x28\xb5\x2f\xfd")  # zstd: decrypted, still compressed
    assert _body(raw) == artifact_path(backup).read_bytes()
    client.force_login(viewer)
    assert 'data-testid="download"' not in client.get(page).content.decode()
    assert client.get(download).status_code == 403


def test_a_download_that_cannot_start_says_why_on_the_backup_page(
    client, owner, two_database_backups
):
    backup, _ = two_database_backups["billing"]
    artifact_path(backup).unlink()
    client.force_login(owner)

    response = client.get(f"/backups/{backup.id}/download/", follow=True)

    assert response.redirect_chain[-1][0] == f"/backups/{backup.id}/"
    assert "the artifact is missing" in response.content.decode()
