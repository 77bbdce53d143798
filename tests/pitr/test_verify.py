"""The archive verification (``pitr.verify``) against real destinations: a local directory
and an S3 bucket (moto server), WAL stored by the real ``wal_archive``; a file removed or
damaged there becomes a gap, the window shrinks, the alert is raised and a restore into
the gap is refused before anything runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from alerts.models import Alert
from backups.models import Backup, WalSegment
from organizations.models import Role
from pitr import physical
from pitr.archive import gap_key, wal_archive
from pitr.coverage import pitr_coverage
from pitr.tasks import run_pitr_housekeeping
from pitr.verify import verify_key, wal_verify
from restores.models import Restore
from tests import factories
from tests.fixtures.tenants import DEFAULT_SLUG, tenant_path
from tests.pitr.helpers import base_backup as make_base_backup

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def make_database(environment, name: str):
    return factories.DatabaseFactory(
        environment=environment, name=name, slug=name.lower(), engine="postgresql"
    )


def base_backup(database, *, start: int):
    return make_base_backup(database, start=start, stop_time=T0)


def archive(database, tmp_path, numbers) -> list[WalSegment]:
    segments = []
    for number in numbers:
        name = physical.segment_name(1, number)
        path = tmp_path / f"{database.slug}-{name}"
        path.write_bytes(name.encode() * 4096 + database.slug.encode())
        segment = wal_archive(database=database, path=path, name=name).segment
        at = T0 + timedelta(hours=number - 1)
        WalSegment.objects.filter(pk=segment.pk).update(last_xact_at=at, stored_at=at)
        segments.append(segment)
    return segments


@pytest.fixture
def disks(organisation):
    """Two local destinations, both the schedule's: every WAL file is stored in each."""
    return [
        factories.DestinationFactory(
            organisation=organisation,
            name=name,
            config={"path": str(tenant_path(DEFAULT_SLUG, f"verify-{name.lower()}"))},
        )
        for name in ("Disk", "Mirror")
    ]


@pytest.fixture
def archived(environment, disks, tmp_path):
    """Two PostgreSQL databases of one environment archiving into both disks: base backups
    at segment 2, WAL 2..8 (segment n's last commit at T0 + n-1 hours)."""
    schedule = factories.ScheduleFactory(
        environment=environment, full_cron="0 2 * * *", wal_enabled=True, wal_retention_days=7
    )
    schedule.destinations.set(disks)
    out = {}
    for name in ("Orders", "Billing"):
        database = make_database(environment, name)
        base = base_backup(database, start=2)
        out[name] = (database, base, archive(database, tmp_path, range(2, 9)))
    return out


def stored_file(destination, segment):
    return tenant_path(DEFAULT_SLUG, f"verify-{destination.name.lower()}") / segment.key


def database_coverage(environment, name):
    coverage = pitr_coverage(environment=environment)
    return next(d for d in coverage["databases"] if d["databaseName"] == name)


def test_an_intact_archive_is_listed_and_reread_within_the_budget(archived, disks):
    database, _, segments = archived["Orders"]
    one_file = segments[0].stored_size
    # The budget counts bytes read: 3 files of 2 copies each.
    report = wal_verify(database=database, reread_budget=2 * 3 * one_file)
    assert report.listed == 2 * len(segments) and report.problems == {}
    assert report.reread == 3 and report.reread_bytes == 2 * 3 * one_file
    verified = WalSegment.objects.filter(database=database, verified_at__isnull=False)
    assert verified.count() == 3
    # The next run goes on where this one stopped: the files never re-read come first.
    wal_verify(database=database, reread_budget=2 * 3 * one_file)
    assert WalSegment.objects.filter(database=database, verified_at__isnull=False).count() == 6
    assert database_coverage(database.environment, "Orders")["verification"]["lostFiles"] == 0


def test_a_segment_gone_from_every_destination_is_a_gap_that_shrinks_the_window(
    archived, disks, environment
):
    database, base, segments = archived["Orders"]
    before = database_coverage(environment, "Orders")
    assert before["latestRecoverableTime"] == "2026-11-01T07:00:00Z"
    lost = segments[3]  # segment 5
    for disk in disks:
        stored_file(disk, lost).unlink()

    run_pitr_housekeeping()  # one cycle: verification, then the monitor

    coverage = database_coverage(environment, "Orders")
    assert coverage["latestRecoverableTime"] == "2026-11-01T03:00:00Z"  # segment 4's last
    assert coverage["gaps"] == [
        {
            "timeline": 1,
            "afterWal": segments[2].name,
            "beforeWal": segments[4].name,
            "firstMissingWal": lost.name,
            "missingSegments": 1,
            "reason": "lost",
            "lostWal": [lost.name],
            "problem": "Disk: missing; Mirror: missing",
        }
    ]
    assert pitr_coverage(environment=environment)["status"] == "gaps"
    alert = Alert.objects.get(dedup_key=gap_key(database), resolved_at__isnull=True)
    assert lost.name in alert.message and alert.severity == "critical"
    # The other database of the environment is untouched.
    assert database_coverage(environment, "Billing")["gaps"] == []
    assert database_coverage(environment, "Billing")["latestRecoverableTime"] == (
        "2026-11-01T07:00:00Z"
    )


def test_a_copy_missing_from_one_destination_is_a_warning_not_a_gap(archived, disks):
    database, _, segments = archived["Orders"]
    stored_file(disks[1], segments[1]).unlink()
    report = wal_verify(database=database, reread_budget=0)
    assert report.problems == {segments[1].name: "Mirror: missing"} and report.lost == []
    coverage = database_coverage(database.environment, "Orders")
    assert coverage["gaps"] == [] and coverage["latestRecoverableTime"] == "2026-11-01T07:00:00Z"
    alert = Alert.objects.get(dedup_key=verify_key(database), resolved_at__isnull=True)
    assert alert.severity == "warning" and segments[1].name in alert.message


def test_a_damaged_copy_of_the_same_size_is_found_by_the_reread(archived, disks):
    database, _, segments = archived["Orders"]
    for disk in disks:
        path = stored_file(disk, segments[-1])
        path.write_bytes(b"\0" * path.stat().st_size)
    listing_only = wal_verify(database=database, reread_budget=0)
    assert listing_only.problems == {}  # same size: a listing cannot tell
    report = wal_verify(database=database, reread_budget=1 << 30)
    assert report.lost == [segments[-1].name]
    assert "checksum mismatch" in report.problems[segments[-1].name]
    gap = database_coverage(database.environment, "Orders")["gaps"][0]
    assert gap["afterWal"] == segments[-2].name and gap["beforeWal"] is None
    assert database_coverage(database.environment, "Orders")["latestRecoverableTime"] == (
        "2026-11-01T06:00:00Z"
    )


def test_a_file_put_back_is_no_longer_a_gap(archived, disks):
    database, _, segments = archived["Orders"]
    path = stored_file(disks[0], segments[2])
    kept = path.read_bytes()
    for disk in disks:
        stored_file(disk, segments[2]).unlink()
    wal_verify(database=database)
    assert database_coverage(database.environment, "Orders")["gaps"]
    for disk in disks:
        stored_file(disk, segments[2]).write_bytes(kept)
    wal_verify(database=database)
    assert database_coverage(database.environment, "Orders")["gaps"] == []
    assert not WalSegment.objects.filter(database=database, lost=True).exists()


def test_a_restore_into_the_gap_is_refused_before_any_safety_backup(
    archived, disks, client_for, organisation
):
    """No verification run since the file went: the request itself lists the archive."""
    database, base, segments = archived["Orders"]
    for disk in disks:
        stored_file(disk, segments[4]).unlink()  # segment 6
    client = client_for(organisation, Role.OPERATOR)
    backups_before = Backup.objects.count()
    body = {"targetType": "same", "pitrTimestamp": "2026-11-01T06:30:00Z"}
    for path in ("restore-plan", "restore"):
        response = client.post(f"/api/backups/{base.id}/{path}", body, format="json")
        assert response.status_code == 422, response.content
        message = response.json()["error"]["message"]
        assert f"WAL segment {segments[4].name} of Orders is missing" in message
        assert "2026-11-01T00:00:01Z to 2026-11-01T04:00:00Z" in message
        assert "pitrTimestamp" in response.json()["error"]["fields"]
    assert not Restore.objects.exists()
    assert Backup.objects.count() == backups_before  # no safety backup
    # Inside what the archive still holds, the same request is accepted.
    ok = client.post(
        f"/api/backups/{base.id}/restore-plan",
        {"targetType": "same", "pitrTimestamp": "2026-11-01T03:30:00Z"},
        format="json",
    )
    assert ok.status_code == 200, ok.content


def test_another_organisations_archive_is_not_touched(
    archived, disks, other_organisation, tmp_path
):
    other_env = factories.EnvironmentFactory(project__organisation=other_organisation)
    theirs = make_database(other_env, "Theirs")
    WalSegment.objects.create(
        organisation=other_organisation,
        environment=other_env,
        database=theirs,
        name=physical.segment_name(1, 2),
        timeline=1,
        segment_number=2,
        size=1,
        stored_size=1,
        checksum_sha256="0" * 64,
        artifact_sha256="0" * 64,
        key="nowhere/000000010000000000000002",
    )
    database, _, _ = archived["Orders"]
    wal_verify(database=database)
    assert WalSegment.objects.get(database=theirs).checked_at is None


def test_the_command_exits_non_zero_naming_the_missing_file(archived, disks):
    database, _, segments = archived["Billing"]
    for disk in disks:
        stored_file(disk, segments[0]).unlink()
    with pytest.raises(CommandError, match="1 WAL file"):
        call_command("verify_wal", "--database", str(database.pk), "--bytes", "0")
    call_command("verify_wal", "--database", str(archived["Orders"][0].pk), "--all")
