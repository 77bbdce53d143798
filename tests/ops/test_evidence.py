"""The recovery evidence report: its figures per database, its HTML and PDF, who may read it,
bad input, and a query count that does not grow with the month's backups."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pypdfium2
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pypdf import PdfReader

from backups.models import BackupKind, BackupStatus, BaseBackupPosition, Encryption, WalSegment
from drills.models import Drill, DrillStatus
from front.evidence import evidence_for, parse_month
from organizations.models import Role
from tests import factories

pytestmark = pytest.mark.django_db

MONTH = datetime(2026, 11, 1, tzinfo=UTC)


def url(organisation, **query):
    base = f"/api/organizations/{organisation.id}/evidence"
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture
def shop(organisation, environment):
    """Two databases of one environment, one of them PostgreSQL, with a schedule."""
    main = factories.DatabaseFactory(environment=environment, name="Main", slug="main")
    cache = factories.DatabaseFactory(
        environment=environment, name="Cache Zoë", slug="cache", engine="sqlite"
    )
    factories.ScheduleFactory(environment=environment, retain_db_daily=7, retain_db_weekly=4)
    return main, cache


def backups_of(database, count, *, start=MONTH, **fields):
    return [
        factories.BackupFactory(
            environment=database.environment,
            database=database,
            engine=database.engine,
            created_at=start + timedelta(hours=6 * i + 1),
            **fields,
        )
        for i in range(count)
    ]


def test_it_counts_each_databases_backups_of_the_month_only(organisation, shop, other_organisation):
    main, cache = shop
    backups_of(main, 5, encryption=Encryption.AES_256_GCM, verified_at=MONTH)
    backups_of(main, 2, status=BackupStatus.FAILED, size=None)
    backups_of(main, 1, verified_by_restore_at=MONTH, anomalies=[{"measure": "size"}])
    backups_of(cache, 3, encryption=Encryption.AGE)
    backups_of(main, 4, start=MONTH - timedelta(days=3))  # October
    backups_of(main, 4, start=MONTH + timedelta(days=30))  # December
    factories.BackupFactory(  # a full backup is the environment's, not the database's
        environment=main.environment, kind=BackupKind.FULL, created_at=MONTH + timedelta(days=2)
    )
    other_env = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    backups_of(factories.DatabaseFactory(environment=other_env), 6)

    evidence = evidence_for(organisation=organisation, month=parse_month("2026-11"))

    rows = {row.database.slug: row for row in evidence.databases}
    assert set(rows) == {"main", "cache"}
    m, c = rows["main"], rows["cache"]
    assert (m.taken, m.completed, m.failed) == (8, 6, 2)
    assert (m.checksum_verified, m.restore_tested, m.with_anomalies) == (5, 1, 1)
    assert m.encryption == {"aes-256-gcm": 5, "none": 1}
    assert m.encryption_text == "AES-256-GCM (5), none (1)"
    assert (c.taken, c.completed, c.encryption_text) == (3, 3, "age (3)")
    assert m.retention.startswith("db daily 7, db weekly 4; newest 1 always kept")
    assert m.drills == [] and evidence.drills_available
    assert m.pitr is None  # no WAL archiving
    assert evidence.totals["taken"] == 11


def test_the_html_report_names_every_database_and_what_the_auditor_asks(
    client_for, organisation, shop
):
    main, cache = shop
    backups_of(main, 3, verified_at=MONTH)
    response = client_for(organisation, Role.ADMIN).get(url(organisation, month="2026-11"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    html = response.content.decode()
    assert "Recovery evidence: Quant Gov" in html and "November 2026" in html
    assert html.count('<section class="database"') == 2
    assert "Cache Zoë" in html
    assert "3 checksum-verified, 0 test-restored" in html
    assert "no drills" in html and "Retention in force" in html and "PITR coverage" in html
    assert "@page" in html and "@media print" in html  # printable, self-contained


def test_the_pdf_report_holds_the_same_facts_on_real_pdf_pages(client_for, organisation, shop):
    main, _ = shop
    backups_of(main, 4, encryption=Encryption.AES_256_GCM)
    response = client_for(organisation, Role.ADMIN).get(
        url(organisation, month="2026-11", format="pdf")
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert 'filename="evidence-quant-gov-2026-11.pdf"' in response["Content-Disposition"]
    reader = PdfReader(io.BytesIO(response.content))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Recovery evidence: Quant Gov" in text
    assert "Cache Zoë" in text  # a real font: not latin-1 only
    assert "AES-256-GCM (4)" in text and "no drills" in text
    # Rendered, the first page is a page with ink on it, not a blank sheet.
    image = pypdfium2.PdfDocument(response.content)[0].render(scale=0.5).to_pil()
    assert image.convert("L").getextrema()[0] < 100


@pytest.mark.parametrize("month", ["", "2026-13", "2026-1", "26-11", "1969-12", "2026-11-01"])
def test_a_bad_month_is_a_400_naming_month(client_for, organisation, month):
    response = client_for(organisation, Role.ADMIN).get(url(organisation, month=month))
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "month" in response.json()["error"]["fields"]


def test_a_missing_month_or_a_bad_format_is_a_400_naming_it(client_for, organisation):
    client = client_for(organisation, Role.ADMIN)
    assert "month" in client.get(url(organisation)).json()["error"]["fields"]
    response = client.get(url(organisation, month="2026-11", format="docx"))
    assert response.status_code == 400 and "format" in response.json()["error"]["fields"]


def test_another_organisation_is_a_404_and_below_admin_is_a_403(
    client_for, organisation, other_organisation
):
    assert client_for(organisation).get(url(other_organisation, month="2026-11")).status_code == 404
    for role in (Role.VIEWER, Role.OPERATOR):
        response = client_for(organisation, role).get(url(organisation, month="2026-11"))
        assert response.status_code == 403
    assert (
        client_for(organisation)
        .get(f"/api/organizations/{organisation.slug}/evidence?month=2026-11")
        .status_code
        == 200
    )


def test_the_query_count_does_not_grow_with_the_months_backups(client_for, organisation, shop):
    main, cache = shop
    client = client_for(organisation, Role.ADMIN)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url(organisation, month="2026-11")).status_code == 200
        return len(captured)

    backups_of(main, 2)
    queries()  # the first request of a token also records its use
    few = queries()
    backups_of(main, 100, status=BackupStatus.FAILED)
    backups_of(cache, 100, verified_at=MONTH)
    assert queries() == few


def _base_with_wal(database, *, stopped, segments, last_xact):
    """A completed base backup and its archived WAL segments, as rows (what coverage reads)."""
    base = factories.BackupFactory(
        environment=database.environment,
        database=database,
        kind=BackupKind.BASE,
        created_at=stopped - timedelta(minutes=5),
        completed_at=stopped,
    )
    BaseBackupPosition.objects.create(
        backup=base,
        timeline=1,
        start_lsn="0/0",
        start_wal=f"{segments[0]:024X}",
        start_segment_number=segments[0],
        stop_time=stopped,
    )
    for number in segments:
        WalSegment.objects.create(
            organisation=database.environment.project.organisation,
            environment=database.environment,
            database=database,
            name=f"00000001{number:016X}",
            timeline=1,
            segment_number=number,
            size=16 << 20,
            stored_size=1 << 20,
            checksum_sha256="0" * 64,
            artifact_sha256="0" * 64,
            key=f"wal/{number}",
            last_xact_at=last_xact,
        )


def test_pitr_coverage_shows_the_months_recoverable_windows(organisation, shop):
    main, _ = shop
    main.engine = "postgresql"
    main.save()
    schedule = main.environment.schedule
    schedule.wal_enabled = True
    schedule.wal_retention_days = 14
    schedule.save()
    # Two bases with a gap in the WAL between them: two windows, the first clipped.
    _base_with_wal(
        main,
        stopped=MONTH - timedelta(days=2) - timedelta(seconds=1),
        segments=[10, 11],
        last_xact=MONTH + timedelta(days=3),
    )
    _base_with_wal(
        main,
        stopped=MONTH + timedelta(days=10) - timedelta(seconds=1),
        segments=[20, 21],
        last_xact=MONTH + timedelta(days=12),
    )

    evidence = evidence_for(organisation=organisation, month=parse_month("2026-11"))

    row = next(r for r in evidence.databases if r.database.slug == "main")
    assert row.pitr == [
        (MONTH, MONTH + timedelta(days=3)),
        (MONTH + timedelta(days=10), MONTH + timedelta(days=12)),
    ]
    assert row.pitr_covered_percent == round(100 * 5 / 30, 1)
    assert "WAL kept 14 days" in row.retention
    other = next(r for r in evidence.databases if r.database.slug == "cache")
    assert other.pitr is None  # SQLite has no point-in-time recovery


def test_an_admin_opens_the_report_from_the_ui_and_downloads_its_pdf(
    client, owner, viewer, organisation, shop
):
    client.force_login(owner)
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="evidence-link"' in dashboard
    page = client.get(reverse("evidence") + "?month=2026-11")
    assert page.status_code == 200 and "Download as PDF" in page.content.decode()
    pdf = client.get(reverse("evidence") + "?month=2026-11&format=pdf")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert client.get(reverse("evidence") + "?month=2026-99").status_code == 400

    client.force_login(viewer)
    assert 'data-testid="evidence-link"' not in client.get(reverse("dashboard")).content.decode()
    assert client.get(reverse("evidence")).status_code == 403


def test_the_months_ended_drills_of_each_database_are_in_the_report(
    organisation, shop, other_organisation
):
    main, cache = shop

    def drill(database, status, day, rto=None):
        Drill.objects.create(
            environment=database.environment,
            database=database,
            status=status,
            started_at=MONTH + timedelta(days=day),
            finished_at=MONTH + timedelta(days=day, minutes=1),
            rto_seconds=rto,
            message="public.orders: 7 recorded, 5 restored" if status == "failed" else "",
        )

    drill(main, DrillStatus.PASSED, 2, rto=12.5)
    drill(main, DrillStatus.FAILED, 9, rto=None)
    drill(main, DrillStatus.PASSED, -3, rto=9.0)  # October
    drill(main, DrillStatus.RUNNING, 12)  # not ended
    other_env = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    drill(factories.DatabaseFactory(environment=other_env), DrillStatus.PASSED, 3, rto=1.0)

    evidence = evidence_for(organisation=organisation, month=parse_month("2026-11"))

    rows = {row.database.slug: row for row in evidence.databases}
    assert [(d.passed, d.rto_seconds) for d in rows["main"].drills] == [(True, 12.5), (False, None)]
    assert rows["main"].drills[1].message.startswith("public.orders")
    assert rows["cache"].drills == []
