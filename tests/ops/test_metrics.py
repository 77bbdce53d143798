"""/metrics through prometheus_client: values and labels against the rows, read back with
prometheus_client's own parser, and a scrape whose query count does not grow with history."""

from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.tasks import async_task
from prometheus_client.parser import text_string_to_metric_families

from alerts.models import AlertKind, Severity
from backups.models import Backup, BackupKind, BackupMethod, BackupStatus, WalArchiver
from restores.models import RestoreStatus
from tests import factories
from tests.fixtures.databases import require_tools

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[str, list]:
    """Metric family name -> its samples, as Prometheus would read the response."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(response.content.decode())
    }


def value(families, name, sample_name=None, **labels) -> float:
    """The one sample of ``name`` whose labels are exactly ``labels``."""
    sample_name = sample_name or name
    found = [
        s.value
        for s in families[name]
        if s.name == sample_name and s.labels == {k: str(v) for k, v in labels.items()}
    ]
    assert len(found) == 1, (sample_name, labels, families[name])
    return found[0]


def labels_of(families, name) -> list[dict]:
    return [s.labels for s in families[name] if s.name == name]


def sorted_items(labels: dict) -> list:
    return sorted(labels.items())


def database_labels(database, **extra) -> dict:
    environment = database.environment
    return {
        "organization": environment.project.organisation.slug,
        "project": environment.project.slug,
        "environment": environment.slug,
        "database": database.slug,
        **extra,
    }


def ran(database, *, finished, seconds, status=BackupStatus.COMPLETED, size=100, **fields):
    return factories.BackupFactory(
        environment=fields.pop("environment", None) or database.environment,
        database=database,
        status=status,
        size=size,
        created_at=finished - timedelta(seconds=seconds),
        started_at=finished - timedelta(seconds=seconds),
        completed_at=finished,
        **fields,
    )


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def estate(organisation, other_organisation, environment, now):
    """Two organisations; one environment with several databases (one whose last run failed,
    one never backed up), another whose databases a full backup holds, and one with WAL."""
    staging = environment
    orders = factories.DatabaseFactory(environment=staging, slug="orders", engine="postgresql")
    events = factories.DatabaseFactory(environment=staging, slug="events")
    never = factories.DatabaseFactory(environment=staging, slug="never-backed-up")
    ran(orders, finished=now - timedelta(hours=30), seconds=40, size=400)
    ran(orders, finished=now - timedelta(hours=2), seconds=90, size=500)
    ran(orders, finished=now - timedelta(hours=1), seconds=20, status=BackupStatus.FAILED)
    ran(events, finished=now - timedelta(hours=3), seconds=4, size=300)

    production = factories.EnvironmentFactory(project=staging.project, slug="production")
    production_orders = factories.DatabaseFactory(
        environment=production, slug="orders", created_at=now - timedelta(days=10)
    )
    added_later = factories.DatabaseFactory(environment=production, slug="added-later")
    added_during = factories.DatabaseFactory(
        environment=production, slug="added-during", created_at=now - timedelta(hours=5, seconds=1)
    )
    factories.BackupFactory(
        environment=production,
        kind=BackupKind.FULL,
        size=9000,
        created_at=now - timedelta(hours=5, seconds=600),
        started_at=now - timedelta(hours=5, seconds=600),
        completed_at=now - timedelta(hours=5),
    )

    shop = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation, slug="shop"), slug="live"
    )
    factories.ScheduleFactory(environment=shop, wal_enabled=True)
    main = factories.DatabaseFactory(environment=shop, slug="main", engine="postgresql")
    ran(main, finished=now - timedelta(hours=10), seconds=7200, size=70)
    WalArchiver.objects.create(
        database=main, last_archived_wal="000000010000000000000003", last_archived_at=now
    )
    # WAL archived once, but archiving is off for this environment now: no age series.
    WalArchiver.objects.create(database=orders, last_archived_at=now - timedelta(days=3))
    return {
        "orders": orders,
        "events": events,
        "never": never,
        "production_orders": production_orders,
        "added_later": added_later,
        "added_during": added_during,
        "production": production,
        "main": main,
        "shop": shop,
    }


def test_the_last_success_of_each_database_is_its_newest_completed_backup(client, estate, now):
    families = scrape(client)
    name = "strongbox_database_last_success_timestamp_seconds"
    hours_ago = {
        "orders": 2,  # its newest run failed an hour ago: the success before it counts
        "events": 3,
        "production_orders": 5,  # held by its environment's full backup
        "main": 10,
    }
    for key, hours in hours_ago.items():
        expected = (now - timedelta(hours=hours)).timestamp()
        assert value(families, name, **database_labels(estate[key])) == expected, key


def test_a_database_never_backed_up_reports_zero_so_the_age_alert_fires(client, estate):
    families = scrape(client)
    name = "strongbox_database_last_success_timestamp_seconds"
    assert value(families, name, **database_labels(estate["never"])) == 0
    # A full backup that started before the database existed does not hold it.
    assert value(families, name, **database_labels(estate["added_later"])) == 0
    assert value(families, name, **database_labels(estate["added_during"])) == 0


def test_every_database_of_both_organisations_has_one_last_success_series(client, estate):
    families = scrape(client)
    found = labels_of(families, "strongbox_database_last_success_timestamp_seconds")
    expected = [database_labels(d) for k, d in estate.items() if k not in ("production", "shop")]
    assert sorted(found, key=sorted_items) == sorted(expected, key=sorted_items)


def test_the_size_and_last_duration_are_those_of_the_newest_completed_backup(client, estate):
    families = scrape(client)
    orders = database_labels(estate["orders"], kind="database")
    assert value(families, "strongbox_backup_size_bytes", **orders) == 500
    assert value(families, "strongbox_backup_last_duration_seconds", **orders) == 90
    main = database_labels(estate["main"], kind="database")
    assert value(families, "strongbox_backup_size_bytes", **main) == 70
    full = {
        "organization": "quant-gov",
        "project": "dashboard",
        "environment": "production",
        "database": "",
        "kind": "full",
    }
    assert value(families, "strongbox_backup_size_bytes", **full) == 9000
    assert value(families, "strongbox_backup_last_duration_seconds", **full) == 600


def test_the_duration_histogram_buckets_the_completed_runs_of_each_database(client, estate):
    families = scrape(client)
    name = "strongbox_backup_duration_seconds"
    orders = database_labels(estate["orders"], kind="database")  # runs of 40 s and 90 s
    assert value(families, name, f"{name}_count", **orders) == 2
    assert value(families, name, f"{name}_sum", **orders) == 130
    bucket = f"{name}_bucket"
    assert value(families, name, bucket, **orders, le="30.0") == 0
    assert value(families, name, bucket, **orders, le="60.0") == 1
    assert value(families, name, bucket, **orders, le="120.0") == 2
    assert value(families, name, bucket, **orders, le="+Inf") == 2
    main = database_labels(estate["main"], kind="database")  # two hours
    assert value(families, name, bucket, **main, le="3600.0") == 0
    assert value(families, name, bucket, **main, le="7200.0") == 1
    never = database_labels(estate["never"], kind="database")
    assert never not in [s.labels for s in families[name] if s.name == f"{name}_count"]


def test_wal_archive_age_is_reported_where_wal_archiving_is_on(client, estate):
    WalArchiver.objects.filter(database=estate["main"]).update(
        last_archived_at=timezone.now() - timedelta(seconds=120)
    )
    families = scrape(client)
    name = "strongbox_wal_archive_age_seconds"
    # A bound, not an equality: the scrape runs a moment after the row was written.
    assert 120 <= value(families, name, **database_labels(estate["main"])) < 180
    assert labels_of(families, name) == [database_labels(estate["main"])]


def test_running_jobs_and_open_alerts_are_counted_per_organisation(
    client, organisation, other_organisation, estate
):
    shop_db = factories.DatabaseFactory(environment=estate["shop"], slug="second")
    factories.BackupFactory(
        environment=estate["shop"], database=shop_db, status=BackupStatus.IN_PROGRESS
    )
    factories.RestoreFactory(
        backup=Backup.objects.get(database=estate["events"]), status=RestoreStatus.IN_PROGRESS
    )
    critical = {"kind": AlertKind.BACKUP_FAILED, "severity": Severity.CRITICAL}
    factories.AlertFactory.create_batch(2, organisation=organisation, **critical)
    factories.AlertFactory(organisation=organisation, resolved_at=timezone.now(), **critical)
    factories.AlertFactory(organisation=organisation, dismissed_at=timezone.now(), **critical)
    factories.AlertFactory(
        organisation=other_organisation, kind=AlertKind.WAL_LAG, severity=Severity.WARNING
    )

    families = scrape(client)
    jobs = "strongbox_running_jobs"
    assert value(families, jobs, organization="elsewhere", kind="backup") == 1
    assert value(families, jobs, organization="elsewhere", kind="restore") == 0
    assert value(families, jobs, organization="quant-gov", kind="backup") == 0
    assert value(families, jobs, organization="quant-gov", kind="restore") == 1
    alerts = "strongbox_alerts_open"
    assert value(families, alerts, organization="quant-gov", **critical) == 2
    assert (
        value(families, alerts, organization="elsewhere", kind="wal_lag", severity="warning") == 1
    )
    assert len(labels_of(families, alerts)) == 2


def test_queue_depth_counts_the_tasks_waiting_in_the_broker(client, db):
    before = value(scrape(client), "strongbox_queue_depth")
    async_task("math.floor", 1.5)
    async_task("math.floor", 2.5)
    families = scrape(client)
    assert value(families, "strongbox_queue_depth") == before + 2
    assert value(families, "strongbox_broker_up") == 1


def test_metrics_keep_their_bearer_token_protection(client, settings, estate):
    settings.STRONGBOX_METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    families = scrape(client, HTTP_AUTHORIZATION="Bearer scrape-me")
    assert "strongbox_database_last_success_timestamp_seconds" in families


def history(databases, count: int, *, start) -> None:
    """``count`` finished backups spread over ``databases``, one insert per thousand."""
    rows = []
    for n in range(count):
        database = databases[n % len(databases)]
        finished = start + timedelta(minutes=n)
        rows.append(
            Backup(
                organisation=database.environment.project.organisation,
                environment=database.environment,
                database=database,
                name=f"history-{uuid.uuid4().hex}",
                kind=BackupKind.DATABASE,
                method=BackupMethod.LOGICAL,
                engine="sqlite",
                status=BackupStatus.FAILED if n % 10 == 0 else BackupStatus.COMPLETED,
                size=n,
                created_at=finished - timedelta(seconds=n % 600),
                started_at=finished - timedelta(seconds=n % 600),
                completed_at=finished,
            )
        )
    Backup.objects.bulk_create(rows, batch_size=1000)


def queries_of_a_scrape(client) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as queries:
        families = scrape(client)
    return len(queries), families


@pytest.mark.slow
def test_a_scrape_costs_the_same_queries_at_10_and_at_10000_backups(
    client, environment, other_organisation, now
):
    other = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    databases = [
        *(factories.DatabaseFactory(environment=environment) for _ in range(3)),
        factories.DatabaseFactory(environment=other),
    ]
    start = now - timedelta(days=30)
    history(databases, 10, start=start)
    at_10, _ = queries_of_a_scrape(client)
    history(databases, 9990, start=start + timedelta(days=7))
    at_10000, families = queries_of_a_scrape(client)

    assert at_10 == at_10000
    assert at_10000 <= 15
    name = "strongbox_backup_duration_seconds"
    counted = sum(s.value for s in families[name] if s.name == f"{name}_count")
    assert counted == 9000  # every tenth run failed
    assert value(families, "strongbox_backups", status="completed") == 9000


# --- with Prometheus' own promtool: the exposition passes its lint, the documented rule fires -


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    require_tools("promtool")
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def test_the_exposition_passes_promtools_lint(client, estate):
    response = client.get("/metrics")
    result = promtool("check", "metrics", stdin=response.content)
    assert result.returncode == 0, result.stdout + result.stderr


def documented_alert_rules() -> str:
    """The YAML block of README's Metrics section, as an operator would copy it."""
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_documented_alert_rules_fire_after_26_hours_without_a_backup_or_when_wal_stops(
    tmp_path,
):
    rules = tmp_path / "strongbox.rules.yml"
    rules.write_text(documented_alert_rules())
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # promtool's clock starts at 0: at 30 h, "fresh" succeeded 1 h ago, "stale" 27 h ago,
    # and "never" reports 0 (never backed up). A sample a minute, as a scrape would give.
    last_success = "strongbox_database_last_success_timestamp_seconds"
    wal_stale = {
        "exp_labels": {"severity": "warning", **labels_of_database("main")},
        "exp_annotations": {"summary": "No WAL archived for main in 40m 0s"},
    }
    cases = tmp_path / "strongbox.test.yml"
    cases.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rules.name],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {"series": series_of(last_success, "fresh"), "values": "104400+0x2400"},
                            {"series": series_of(last_success, "stale"), "values": "10800+0x2400"},
                            {"series": series_of(last_success, "never"), "values": "0+0x2400"},
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "30h",
                                "alertname": "StrongboxNoSuccessfulBackup",
                                "exp_alerts": [
                                    fired("stale", "1d 3h 0m 0s"),
                                    fired("never", "1d 6h 0m 0s"),
                                ],
                            },
                            {
                                "eval_time": "20h",
                                "alertname": "StrongboxNoSuccessfulBackup",
                                "exp_alerts": [],
                            },
                        ],
                    },
                    {
                        # Archiving stops: the age grows a minute a minute from 0.
                        "interval": "1m",
                        "input_series": [
                            {
                                "series": series_of("strongbox_wal_archive_age_seconds", "main"),
                                "values": "0+60x60",
                            },
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "20m",
                                "alertname": "StrongboxWalArchiveStale",
                                "exp_alerts": [],
                            },
                            {
                                "eval_time": "40m",
                                "alertname": "StrongboxWalArchiveStale",
                                "exp_alerts": [wal_stale],
                            },
                        ],
                    },
                ],
            }
        )
    )
    result = promtool("test", "rules", str(cases))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def labels_of_database(database: str) -> dict:
    return {"organization": "o", "project": "p", "environment": "e", "database": database}


def series_of(metric: str, database: str) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in labels_of_database(database).items())
    return f"{metric}{{{labels}}}"


def fired(database: str, ago: str) -> dict:
    return {
        "exp_labels": {"severity": "critical", **labels_of_database(database)},
        "exp_annotations": {
            "summary": f"No successful backup of {database} in 26 hours",
            "description": f"o/p/e/{database}: the last successful backup finished {ago} ago.",
        },
    }
