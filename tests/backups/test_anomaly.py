"""Anomaly alerts: real backups of real PostgreSQL databases compared with their history,
and the pure rules (backups/anomaly.py) on their edges."""

from __future__ import annotations

import pytest
from django.urls import reverse

from alerts.models import Alert, AlertKind, Severity
from backups.anomaly import Point, Thresholds, judge
from backups.engines.postgresql import PostgreSQLEngine
from backups.models import BackupStatus
from organizations.models import Role
from tests import factories
from tests.backups.helpers import database_for, restore_database_artifact, run_backup_now
from tests.fixtures.databases import fill_postgres, table_checksums

pytestmark = pytest.mark.django_db

DEFAULTS = Thresholds()


def _execute(spec, *statements) -> None:
    with PostgreSQLEngine().connect(spec) as conn:
        for statement in statements:
            conn.execute(statement)


def _history(database, environment, count=3):
    return [
        run_backup_now(environment=environment, kind="database", database=database)
        for _ in range(count)
    ]


def _anomaly_alerts():
    return Alert.objects.filter(kind=AlertKind.BACKUP_SIZE_ANOMALY)


# --- real backups ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_truncated_table_raises_the_alert_naming_the_table_and_the_backup_still_restores(
    environment, destination, postgres_spec, make_postgres_database
):
    fill_postgres(postgres_spec, rows=2000)  # customers 2000, documents 1000, measurements 4000
    database = database_for(environment, postgres_spec)
    history = _history(database, environment)
    assert all(b.anomalies == [] for b in history)

    _execute(postgres_spec, "DELETE FROM measurements WHERE id % 5 <> 0")  # 80% of its rows
    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.COMPLETED, backup.message
    rows = [a for a in backup.anomalies if a["measure"] == "rows"]
    assert rows == [
        {
            "measure": "rows",
            "table": "public.measurements",
            "value": 800,
            "median": 4000,
            "message": "table public.measurements: 800 rows is below the band of 50%–200% "
            "of the median 4,000 rows",
        }
    ]
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED and backup.anomalies
    alert = _anomaly_alerts().get()
    assert alert.backup_id == backup.id and alert.severity == Severity.WARNING
    assert "public.measurements: 800 rows" in alert.message and "4,000" in alert.message
    # The flagged backup is a real one: it restores, table for table.
    target = make_postgres_database()
    restore_database_artifact(backup, target)
    assert table_checksums(target) == table_checksums(postgres_spec)


@pytest.mark.postgres
def test_rows_that_no_longer_compress_raise_the_compression_alert(
    environment, destination, postgres_spec
):
    _execute(
        postgres_spec,
        "CREATE TABLE notes (id integer PRIMARY KEY, body text)",
        "INSERT INTO notes SELECT g, repeat('customer asked about the invoice; ', 12)"
        " FROM generate_series(1, 3000) g",
    )
    database = database_for(environment, postgres_spec)
    _history(database, environment)

    # What ransomware does to rows in place: same rows, same count, random bytes (as hex).
    _execute(
        postgres_spec,
        "UPDATE notes SET body = (SELECT string_agg(md5(random()::text || id || k), '')"
        " FROM generate_series(1, 12) k)",
    )
    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.COMPLETED, backup.message
    (compression,) = [a for a in backup.anomalies if a["measure"] == "compression"]
    assert compression["value"] * 2 < compression["median"]
    assert "compression ratio" in compression["message"]
    assert not [a for a in backup.anomalies if a["measure"] == "rows"]  # counts unchanged
    assert "compression ratio" in _anomaly_alerts().get().message


@pytest.mark.postgres
def test_normal_growth_raises_nothing(environment, destination, postgres_spec):
    fill_postgres(postgres_spec, rows=1000)
    database = database_for(environment, postgres_spec)
    for start in (5000, 5100, 5200, 5300):
        run_backup_now(environment=environment, kind="database", database=database)
        # About 5% more customers before each next backup.
        _execute(
            postgres_spec,
            f"INSERT INTO customers SELECT g, 'Ada #' || g, 1.5, NULL"  # noqa: S608
            f" FROM generate_series({start}, {start + 49}) g",
        )
    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.COMPLETED
    assert backup.anomalies == []
    assert not _anomaly_alerts().exists()


@pytest.mark.postgres
def test_two_databases_of_one_environment_are_separate_series(
    environment, destination, make_postgres_database
):
    big_spec, small_spec = make_postgres_database(), make_postgres_database()
    fill_postgres(big_spec, rows=3000)
    fill_postgres(small_spec, rows=150)
    big = database_for(environment, big_spec, slug="big")
    small = database_for(environment, small_spec, slug="small")
    for _ in range(3):
        run_backup_now(environment=environment, kind="database", database=big)
        run_backup_now(environment=environment, kind="database", database=small)

    _execute(big_spec, "DELETE FROM customers WHERE id > 500")
    big_backup = run_backup_now(environment=environment, kind="database", database=big)
    small_backup = run_backup_now(environment=environment, kind="database", database=small)

    # Had the small one been judged against the big one's history, it would be "too small".
    assert small_backup.anomalies == []
    assert [a["table"] for a in big_backup.anomalies if a["measure"] == "rows"] == [
        "public.customers"
    ]
    alert = _anomaly_alerts().get()
    assert alert.backup_id == big_backup.id
    assert alert.dedup_key == f"backup_size_anomaly:database:{big.id}"


@pytest.mark.postgres
def test_an_empty_dump_of_a_database_that_had_rows_is_always_an_alert(
    environment, destination, postgres_spec, make_postgres_database
):
    fill_postgres(postgres_spec, rows=50)  # small: below every row and byte floor
    database = database_for(environment, postgres_spec)
    run_backup_now(environment=environment, kind="database", database=database)  # one point

    _execute(postgres_spec, "DELETE FROM customers", "DELETE FROM documents")
    _execute(postgres_spec, "DELETE FROM measurements")
    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.COMPLETED
    assert [a["measure"] for a in backup.anomalies] == ["empty"]
    assert backup.anomalies[0]["median"] == 50 + 25 + 100
    alert = _anomaly_alerts().get()
    assert alert.severity == Severity.CRITICAL and "no rows" in alert.message
    target = make_postgres_database()
    restore_database_artifact(backup, target)
    assert table_checksums(target) == table_checksums(postgres_spec)  # empty, as the source


@pytest.mark.postgres
def test_a_database_with_anomaly_checks_off_is_not_judged(environment, destination, postgres_spec):
    fill_postgres(postgres_spec, rows=50)
    database = database_for(environment, postgres_spec, anomaly_checks=False)
    run_backup_now(environment=environment, kind="database", database=database)
    _execute(postgres_spec, "DELETE FROM customers", "DELETE FROM documents")
    _execute(postgres_spec, "DELETE FROM measurements")

    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.anomalies == [] and not _anomaly_alerts().exists()


# --- the API ---------------------------------------------------------------------------------


def test_the_backup_answer_shows_its_anomalies(client_for, organisation, environment):
    findings = [
        {
            "measure": "rows",
            "table": "public.orders",
            "value": 200,
            "median": 1000,
            "message": "table public.orders: 200 rows is below …",
        }
    ]
    backup = factories.BackupFactory(
        environment=environment, status=BackupStatus.COMPLETED, anomalies=findings
    )
    body = client_for(organisation, Role.VIEWER).get(f"/api/backups/{backup.id}").json()
    assert body["status"] == "completed"
    assert body["anomalies"] == findings


def test_a_database_takes_its_own_thresholds_and_null_goes_back_to_the_default(
    client_for, organisation, environment
):
    database = factories.DatabaseFactory(environment=environment)
    client = client_for(organisation, Role.ADMIN)

    body = client.patch(
        f"/api/databases/{database.id}",
        {"anomalyDropPercent": 30, "anomalyMinRows": 1000, "anomalyChecks": True},
        format="json",
    ).json()
    assert (body["anomalyDropPercent"], body["anomalyMinRows"]) == (30, 1000)
    assert body["anomalyJumpPercent"] is None
    database.refresh_from_db()
    assert (database.anomaly_drop_percent, database.anomaly_min_rows) == (30, 1000)

    client.patch(f"/api/databases/{database.id}", {"anomalyDropPercent": None}, format="json")
    database.refresh_from_db()
    assert database.anomaly_drop_percent is None and database.anomaly_min_rows == 1000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("anomalyDropPercent", 0),
        ("anomalyDropPercent", 100),
        ("anomalyJumpPercent", 100),
        ("anomalyMinRows", -1),
        ("anomalyCompressionDropPercent", "50"),
        ("anomalyChecks", 1),
    ],
)
def test_a_bad_threshold_is_a_400_naming_the_field(
    client_for, organisation, environment, field, value
):
    database = factories.DatabaseFactory(environment=environment)
    response = client_for(organisation, Role.ADMIN).patch(
        f"/api/databases/{database.id}", {field: value}, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_another_organisations_database_thresholds_are_a_404_and_untouched(
    client_for, other_organisation, environment
):
    database = factories.DatabaseFactory(environment=environment)
    response = client_for(other_organisation, Role.ADMIN).patch(
        f"/api/databases/{database.id}", {"anomalyDropPercent": 10}, format="json"
    )
    assert response.status_code == 404
    database.refresh_from_db()
    assert database.anomaly_drop_percent is None


# --- the pages -------------------------------------------------------------------------------


def test_the_backup_list_and_page_show_a_flagged_backup_with_its_findings(
    client, viewer, environment
):
    finding = {
        "measure": "rows",
        "table": "public.orders",
        "value": 200,
        "median": 1000,
        "message": "table public.orders: 200 rows is below the band",
    }
    flagged = factories.BackupFactory(environment=environment, anomalies=[finding])
    plain = factories.BackupFactory(environment=environment)
    client.force_login(viewer)

    listing = client.get(
        reverse("environment-detail", args=[environment.project_id, environment.id])
    ).content.decode()
    assert listing.count('data-testid="anomaly-badge"') == 1
    row = listing.split(f'data-backup-id="{flagged.id}"')[1].split("</tr>")[0]
    assert "1 anomaly" in row and "public.orders: 200 rows" in row
    assert "anomaly" not in listing.split(f'data-backup-id="{plain.id}"')[1].split("</tr>")[0]

    page = client.get(reverse("backup-detail", args=[flagged.id])).content.decode()
    assert 'data-testid="anomalies"' in page and "<li>table public.orders: 200 rows" in page
    assert "Completed" in page


# --- the rules -------------------------------------------------------------------------------


def _points(*sizes, rows=None, raw_factor=5, compression="zstd"):
    return [
        Point(size=s, raw=s * raw_factor, compression=compression, rows=dict(rows or {}))
        for s in sizes
    ]


def test_nothing_but_an_empty_dump_is_judged_before_three_history_points():
    history = _points(1_000_000, 1_000_000, rows={"t": 5000})
    tiny = Point(size=10, raw=50, compression="zstd", rows={"t": 4000})
    assert judge(tiny, history, DEFAULTS) == []
    empty = Point(size=10, raw=50, compression="zstd", rows={"t": 0})
    assert [f["measure"] for f in judge(empty, history, DEFAULTS)] == ["empty"]


def test_small_tables_need_an_absolute_change_of_at_least_min_rows():
    history = _points(*[1_000_000] * 3, rows={"tiny": 2, "big": 10_000})
    current = Point(
        size=1_000_000, raw=5_000_000, compression="zstd", rows={"tiny": 5, "big": 9000}
    )
    assert judge(current, history, DEFAULTS) == []  # 2 → 5 rows is not an alarm
    jumped = Point(size=1_000_000, raw=5_000_000, compression="zstd", rows={"tiny": 400, "big": 1})
    assert [(f["table"], f["value"]) for f in judge(jumped, history, DEFAULTS)] == [
        ("big", 1),
        ("tiny", 400),
    ]


def test_a_dropped_table_counts_as_zero_rows_and_a_new_one_is_not_judged():
    history = _points(*[1_000_000] * 3, rows={"orders": 5000})
    current = Point(size=1_000_000, raw=5_000_000, compression="zstd", rows={"new": 90_000})
    (finding,) = judge(current, history, DEFAULTS)
    assert (finding["table"], finding["value"], finding["median"]) == ("orders", 0, 5000)


def test_size_is_judged_against_the_median_with_a_byte_floor():
    history = _points(1_000_000, 1_100_000, 50_000_000)  # one odd backup does not move it
    (finding,) = judge(Point(size=400_000, raw=2_000_000, compression="zstd"), history, DEFAULTS)
    assert (finding["measure"], finding["median"]) == ("size", 1_100_000)
    assert "below" in finding["message"]
    small = _points(2000, 2000, 2000)
    assert judge(Point(size=5000, raw=25_000, compression="zstd"), small, DEFAULTS) == []


def test_compression_is_compared_only_among_backups_compressed_the_same_way():
    history = _points(*[1_000_000] * 3, raw_factor=8, compression="gzip")
    current = Point(size=1_000_000, raw=1_100_000, compression="zstd")
    assert judge(current, history, DEFAULTS) == []
    same = Point(size=1_000_000, raw=1_100_000, compression="gzip")
    assert [f["measure"] for f in judge(same, history, DEFAULTS)] == ["compression"]
