"""S3 Object Lock tied to retention, against moto's S3 server on loopback, through the code
production uses: real backups (restored and compared), the retention read back from S3,
deletes the store refuses, retention that waits for the date, extension after a policy
change, and buckets without lock refused. Also local destinations' read-only artifacts."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from django.urls import reverse
from django.utils import timezone

from backups.models import Backup, BackupStatus, BackupTrigger, CopyStatus
from backups.services import backup_delete, backup_delete_artifacts
from config.errors import Conflict, InvalidInput
from destinations.admin import DestinationAdminForm
from destinations.backends import backend_for
from destinations.models import Destination
from destinations.services import destination_create, destination_test, destination_update
from destinations.storage import delete_artifact, open_sink
from organizations.services import host_policy_set
from schedules.enforcement import retention_enforce, retention_plan_for
from schedules.retention import BackupInfo, RetentionPolicy, plan_retention
from schedules.services import schedule_upsert
from schedules.tasks import extend_locks
from tests import factories
from tests.backups.helpers import database_for, restore_database_artifact, run_backup_now
from tests.fixtures.databases import fill_postgres, fill_sqlite, table_checksums
from tests.fixtures.queue import queued_tasks
from tests.fixtures.s3 import ACCESS_KEY, SECRET_KEY, s3_destination_config

pytestmark = [pytest.mark.django_db, pytest.mark.s3]

LOOPBACK = ["127.0.0.0/8", "::1/128"]


@pytest.fixture
def locked_bucket(s3_server) -> str:
    name = f"sbx-lock-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _lock_destination(organisation, s3_server, bucket, **parameters) -> Destination:
    """Made through the service (so the bucket's lock is checked), as the API makes it."""
    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    config, secrets = s3_destination_config(s3_server, bucket)
    return destination_create(
        organisation=organisation,
        name=f"Vault {bucket}",
        kind="s3",
        parameters={"object_lock_mode": "governance", **config, **secrets, **parameters},
    )


def _schedule(environment, destination, **retention):
    schedule, _ = schedule_upsert(
        environment=environment,
        db_cron="0 2 * * *",
        destination_ids=[destination.id],
        **retention,
    )
    return schedule


def _scheduled_backup(environment, database, schedule, destination) -> Backup:
    backup = run_backup_now(
        environment=environment,
        kind="database",
        database=database,
        trigger=BackupTrigger.SCHEDULED,
        schedule=schedule,
        destination_ids=[destination.id],
    )
    assert backup.status == BackupStatus.COMPLETED, backup.message
    return backup


def _retention_in_s3(s3_server, destination, copy) -> dict:
    """The object's lock as S3 answers HeadObject (moto has no GetObjectRetention)."""
    backend = backend_for(destination)
    key = backend.store._normalize_name(copy.key)
    head = s3_server.client().head_object(Bucket=destination.bucket_name, Key=key)
    return {"Mode": head["ObjectLockMode"], "RetainUntilDate": head["ObjectLockRetainUntilDate"]}


def _seconds(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=0)


@pytest.fixture
def locked_backup(organisation, environment, s3_server, locked_bucket, postgres_spec):
    """A real PostgreSQL backup, scheduled under a 30-day daily policy, in a locked bucket."""
    fill_postgres(postgres_spec, rows=300)
    database = database_for(environment, postgres_spec)
    vault = _lock_destination(organisation, s3_server, locked_bucket, object_lock_min_days="2")
    schedule = _schedule(environment, vault, retain_daily_days=30)
    backup = _scheduled_backup(environment, database, schedule, vault)
    return backup, vault, database


def test_a_backup_is_stored_locked_until_the_plan_says_it_expires_and_restores(
    locked_backup, s3_server, postgres_spec, make_postgres_database
):
    backup, vault, _ = locked_backup
    copy = backup.copies.get()
    planned = backup.created_at + timedelta(days=30)

    assert copy.status == CopyStatus.STORED
    assert copy.locked_until == planned
    assert retention_plan_for(environment=backup.environment).expires_at(str(backup.pk)) == planned
    retention = _retention_in_s3(s3_server, vault, copy)
    assert retention["Mode"] == "GOVERNANCE"
    assert _seconds(retention["RetainUntilDate"]) == _seconds(planned)

    target = make_postgres_database()
    restore_database_artifact(backup, target)
    assert table_checksums(target) == table_checksums(postgres_spec)


def test_the_lock_is_at_least_the_destinations_minimum(
    organisation, environment, s3_server, locked_bucket, postgres_spec
):
    fill_postgres(postgres_spec, rows=50)
    database = database_for(environment, postgres_spec)
    vault = _lock_destination(organisation, s3_server, locked_bucket, object_lock_min_days="10")
    schedule = _schedule(environment, vault, retain_daily_days=3)
    before = timezone.now()
    backup = _scheduled_backup(environment, database, schedule, vault)

    copy = backup.copies.get()
    assert before + timedelta(days=10) <= copy.locked_until <= timezone.now() + timedelta(days=10)
    retention = _retention_in_s3(s3_server, vault, copy)
    assert _seconds(retention["RetainUntilDate"]) == _seconds(copy.locked_until)


def test_a_multipart_artifact_is_locked_once_sealed(organisation, s3_server, locked_bucket):
    vault = _lock_destination(organisation, s3_server, locked_bucket, part_size_mb="5")
    backend = backend_for(vault)
    until = (timezone.now() + timedelta(days=5)).replace(microsecond=0)
    sink = open_sink(backend, "big/artifact.zst", locked_until=until)
    payload = os.urandom(1024 * 1024)
    for _ in range(12):  # three 5 MiB parts
        sink.write(payload)
    sink.commit()
    # As the backup run does once the copy is verified: moto's server ignores the lock of a
    # CreateMultipartUpload (S3 honours it), so this is what locks it there.
    backend.seal("big/artifact.zst", locked_until=until)

    key = backend.store._normalize_name("big/artifact.zst")
    head = s3_server.client().head_object(Bucket=locked_bucket, Key=key)
    assert head["ContentLength"] == 12 * len(payload)
    assert "-" in head["ETag"]  # a multipart upload's ETag
    assert (head["ObjectLockMode"], head["ObjectLockRetainUntilDate"]) == ("GOVERNANCE", until)


def test_a_delete_before_the_date_fails_in_the_store_the_service_and_the_api(
    locked_backup, s3_server, client_for, organisation
):
    backup, vault, _ = locked_backup
    copy = backup.copies.get()

    # The store itself refuses: every version of the key, as Strongbox deletes them.
    with pytest.raises(ClientError, match="AccessDenied"):
        delete_artifact(backend_for(vault), copy.key)
    key = backend_for(vault).store._normalize_name(copy.key)
    assert s3_server.client().head_object(Bucket=vault.bucket_name, Key=key)["ContentLength"]

    with pytest.raises(Conflict, match="locked until"):
        backup_delete(backup=backup)
    response = client_for(organisation).delete(f"/api/backups/{backup.id}")
    assert response.status_code == 409, response.json()
    message = response.json()["error"]["message"]
    assert copy.locked_until.isoformat(timespec="seconds") in message
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED


def test_retention_keeps_a_locked_backup_it_would_delete_and_says_why(locked_backup, organisation):
    backup, vault, database = locked_backup
    newer = factories.BackupFactory(
        environment=backup.environment,
        database=database,
        kind="database",
        status=BackupStatus.COMPLETED,
        trigger=BackupTrigger.SCHEDULED,
        created_at=backup.created_at + timedelta(hours=1),
    )
    factories.BackupCopyFactory(backup=newer, destination=vault, status=CopyStatus.STORED)
    # One daily backup: the older one is not kept by any rule any more.
    schedule = backup.environment.schedule
    schedule.retain_daily, schedule.retain_daily_days = 1, None
    schedule.save()
    until = backup.copies.get().locked_until

    decision = retention_plan_for(environment=backup.environment).decision(str(backup.pk))
    assert decision.keep
    assert decision.reasons == [f"locked until {until.isoformat(timespec='seconds')}"]
    assert decision.expires_at == until

    assert retention_enforce(environment=backup.environment) == []
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED

    # Past its date the plan lets it go.
    later = until + timedelta(minutes=1)
    decision = retention_plan_for(environment=backup.environment, now=later).decision(
        str(backup.pk)
    )
    assert not decision.keep
    assert decision.reasons == ["not kept by any rule"]


def test_a_longer_policy_extends_the_lock_and_a_shorter_one_never_shortens_it(
    locked_backup, s3_server, django_capture_on_commit_callbacks
):
    backup, vault, _ = locked_backup
    environment = backup.environment
    copy = backup.copies.get()

    with django_capture_on_commit_callbacks(execute=True):
        schedule_upsert(environment=environment, retain_daily_days=90)
    assert any(t["func"] == "schedules.tasks.extend_locks" for t in queued_tasks())
    assert extend_locks(str(environment.pk)) == 1

    copy.refresh_from_db()
    assert copy.locked_until == backup.created_at + timedelta(days=90)
    retention = _retention_in_s3(s3_server, vault, copy)
    assert _seconds(retention["RetainUntilDate"]) == _seconds(copy.locked_until)

    schedule_upsert(environment=environment, retain_daily_days=10)
    assert extend_locks(str(environment.pk)) == 0
    copy.refresh_from_db()
    assert copy.locked_until == backup.created_at + timedelta(days=90)
    retention = _retention_in_s3(s3_server, vault, copy)
    assert _seconds(retention["RetainUntilDate"]) == _seconds(copy.locked_until)


def test_the_api_shows_the_lock_of_the_backup_and_of_each_copy(locked_backup, client_for):
    backup, _, _ = locked_backup
    organisation = backup.organisation
    body = client_for(organisation).get(f"/api/backups/{backup.id}").json()
    until = backup.copies.get().locked_until
    assert body["lockedUntil"] is not None
    assert datetime.fromisoformat(body["lockedUntil"].replace("Z", "+00:00")) == until
    assert body["destinations"][0]["lockedUntil"] == body["lockedUntil"]


# --- buckets and parameters ------------------------------------------------------------------


def test_a_bucket_without_object_lock_is_refused_on_create_and_update(
    organisation, s3_server, s3_bucket, client_for
):
    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    response = client_for(organisation).post(
        "/api/backup-destinations",
        {
            "name": "Not a vault",
            "kind": "s3",
            "parameters": {**config, **secrets, "object_lock_mode": "compliance"},
        },
        format="json",
    )
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert list(error["fields"]) == ["parameters.object_lock_mode"]
    assert f"{s3_bucket} has none" in error["message"]

    plain = destination_create(
        organisation=organisation, name="Plain", kind="s3", parameters={**config, **secrets}
    )
    with pytest.raises(InvalidInput, match="object lock enabled") as refused:
        destination_update(destination=plain, parameters={"object_lock_mode": "governance"})
    assert list(refused.value.fields) == ["parameters.object_lock_mode"]
    plain.refresh_from_db()
    assert "object_lock_mode" not in plain.config


def test_the_connection_test_says_when_the_bucket_cannot_lock(
    organisation, s3_server, s3_bucket, locked_bucket
):
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    # Saved before the bucket lost its way (or through a path that checks nothing).
    unlockable = factories.DestinationFactory(
        organisation=organisation,
        name="Unlockable",
        kind="s3",
        config={**config, "object_lock_mode": "governance"},
        secrets=secrets,
    )
    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    result = destination_test(destination=unlockable)
    assert not result.ok
    assert result.step == "object lock"
    assert "has none" in result.message

    vault = _lock_destination(organisation, s3_server, locked_bucket)
    assert destination_test(destination=vault).ok


def _form_data(s3_server, bucket, **extra) -> dict:
    config, secrets = s3_destination_config(s3_server, bucket)
    fields = {**config, **secrets, **extra}
    return {"name": f"Vault {bucket}", "kind": "s3"} | {f"s3__{k}": v for k, v in fields.items()}


def test_the_destination_form_takes_a_lock_and_shows_a_bucket_without_lock_next_to_the_field(
    client, owner, organisation, s3_server, s3_bucket, locked_bucket
):
    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    client.force_login(owner)
    refused = client.post(
        reverse("destination-new"),
        _form_data(s3_server, s3_bucket, object_lock_mode="governance"),
    )
    assert refused.status_code == 400
    assert 'id="id_s3__object_lock_mode_error_1"' in refused.content.decode()

    created = client.post(
        reverse("destination-new"),
        _form_data(
            s3_server, locked_bucket, object_lock_mode="compliance", object_lock_min_days="7"
        ),
    )
    assert created.status_code == 302
    vault = Destination.objects.get(name=f"Vault {locked_bucket}")
    assert vault.config["object_lock_mode"] == "compliance"
    assert vault.config["object_lock_min_days"] == "7"


def test_the_admin_refuses_a_lock_on_a_bucket_without_it(organisation, s3_server, s3_bucket):
    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    form = DestinationAdminForm(
        data={
            "organisation": organisation.pk,
            "name": "Vault",
            "kind": "s3",
            "config": json.dumps({**config, "object_lock_mode": "governance"}),
            "secrets_input": json.dumps(secrets),
        }
    )
    assert not form.is_valid()
    assert "has none" in " ".join(form.errors["config"])


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"object_lock_mode": "forever"}, "object_lock_mode"),
        ({"object_lock_mode": "governance", "object_lock_min_days": "0"}, "object_lock_min_days"),
        ({"object_lock_mode": "governance", "object_lock_min_days": "a"}, "object_lock_min_days"),
        ({"object_lock_min_days": "5"}, "object_lock_min_days"),
    ],
)
def test_bad_lock_parameters_are_a_400_naming_them(client_for, organisation, parameters, field):
    body = {
        "bucket": "backups",
        "region": "us-east-1",
        "endpoint_url": "https://s3.example.com",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        **parameters,
    }
    response = client_for(organisation).post(
        "/api/backup-destinations", {"name": "V", "kind": "s3", "parameters": body}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == [f"parameters.{field}"]


# --- local read-only artifacts ---------------------------------------------------------------


def test_a_read_only_local_destination_marks_finished_artifacts_0444_and_can_still_delete_them(
    organisation, environment, sqlite_spec, tmp_path
):
    fill_sqlite(sqlite_spec, rows=100)
    database = database_for(environment, sqlite_spec)
    shelf = factories.DestinationFactory(
        organisation=organisation,
        name="Shelf",
        config={"read_only": "true"},
    )
    backup = run_backup_now(
        environment=environment, kind="database", database=database, destination_ids=[shelf.id]
    )
    assert backup.status == BackupStatus.COMPLETED, backup.message
    path = Path(backend_for(shelf).artifact_path(backup.copies.get().key))
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    if os.geteuid() != 0:  # root ignores file modes: one more thing it does not protect
        with pytest.raises(PermissionError):
            path.open("ab")  # noqa: SIM115 - only to see it refused

    # What it does not protect: deletion, which needs the directory's write bit.
    backup_delete_artifacts(backup=Backup.objects.get(pk=backup.pk))
    assert not path.exists()


def test_read_only_takes_true_or_false(client_for, organisation):
    response = client_for(organisation).post(
        "/api/backup-destinations",
        {"name": "Shelf", "kind": "local", "parameters": {"read_only": "sometimes"}},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["parameters.read_only"]


# --- the pure parts --------------------------------------------------------------------------


NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_a_new_backups_expiry_is_the_longest_days_rule_or_none_with_a_count_only_rule():
    created = NOW
    policy = RetentionPolicy(retain_daily_days=30, retain_weekly=4, retain_weekly_days=90)
    assert policy.newest_expiry("database", created) == created + timedelta(days=90)
    assert RetentionPolicy(retain_daily=7).newest_expiry("database", created) is None
    assert RetentionPolicy().newest_expiry("full", created) is None
    assert RetentionPolicy(retain_daily_days=5).newest_expiry("base", created) is None


def test_the_plan_keeps_a_locked_backup_until_its_date_only():
    until = NOW + timedelta(days=3)
    backups = [
        BackupInfo(id="new", created_at=NOW - timedelta(hours=1), kind="full", status="completed"),
        BackupInfo(
            id="old",
            created_at=NOW - timedelta(days=2),
            kind="full",
            status="completed",
            locked_until=until,
        ),
    ]
    policy = RetentionPolicy(retain_daily=1)
    kept = plan_retention(backups, policy, "UTC", NOW).decision("old")
    assert (kept.keep, kept.expires_at) == (True, until)
    gone = plan_retention(backups, policy, "UTC", until + timedelta(seconds=1)).decision("old")
    assert not gone.keep


def test_the_admin_shows_each_copys_lock_date(client, destination, environment):
    until = datetime(2027, 3, 4, 5, 6, tzinfo=UTC)
    backup = factories.BackupFactory(environment=environment, status=BackupStatus.COMPLETED)
    factories.BackupCopyFactory(
        backup=backup, destination=destination, status=CopyStatus.STORED, locked_until=until
    )
    client.force_login(factories.UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:backups_backup_change", args=[backup.pk]))
    assert page.status_code == 200
    assert "Locked until" in page.content.decode()
