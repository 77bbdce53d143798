"""The recovery evidence report: what an auditor asks of a month (ISO 27001 A.8.13, SOC 2
CC7/A1), per database: backups taken, failed and verified, drills and their recovery times,
the retention policy and encryption in force, and point-in-time recovery coverage.

``evidence_for`` is the one read (a selector); ``evidence_html`` and ``evidence_pdf`` render
it, for the API (``front/api``) and the page (``front/views``) alike. Its queries do not
grow with the number of backups: the month's backups are counted in two grouped queries,
databases, schedules and the encryption in force in a few more; PITR coverage costs two
queries per PostgreSQL database with WAL archiving on.

Months are calendar months in UTC. The retention policy and encryption "in force" are the
settings as the report is generated (Strongbox keeps no history of them; the audit log
does); the month's backups show which encryption they were actually written with.

Drills: ``drills_for_month`` is where the report reads them (passed and failed drills that
started in the month, with their recovery times); a database without any says "no drills in
the month".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from django.db.models import Count, Max, Q
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from fpdf import FPDF
from fpdf.fonts import FontFace

from backups.keys import artifact_encryption
from backups.models import Backup, BackupKind, BackupStatus, Encryption
from config.errors import InvalidInput
from drills.models import Drill, DrillStatus
from organizations.models import Database, Engine, Organisation
from pitr.coverage import database_windows
from schedules.models import RETENTION_FIELDS, Schedule

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MONTH_MESSAGE = "A month as YYYY-MM, such as 2026-11."
FORMATS = ("html", "pdf")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BOLD_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
# fpdf2 leaves the cursor right of a cell by default; a paragraph ends on a new line.
NEXT_LINE = {"new_x": "LMARGIN", "new_y": "NEXT", "align": "L"}
# Room a database's section takes in the PDF (mm): its heading and nine rows, two of them long.
SECTION_HEIGHT = 75
ENCRYPTION_NAMES = {
    Encryption.AES_256_GCM: "AES-256-GCM",
    Encryption.AGE: "age",
    Encryption.NONE: "none",
}


def parse_month(value: str | None) -> date:
    """The first day of the month ``YYYY-MM``; InvalidInput naming ``month`` otherwise."""
    match = MONTH.match(value or "")
    if not match or int(match.group(1)) < 1970:
        raise InvalidInput(f"month: {MONTH_MESSAGE}", fields={"month": [MONTH_MESSAGE]})
    return date(int(match.group(1)), int(match.group(2)), 1)


def _bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return start, datetime(following.year, following.month, 1, tzinfo=UTC)


@dataclass
class DrillEvidence:
    """One restore drill (the drills app fills these in)."""

    started_at: datetime
    passed: bool
    rto_seconds: float | None
    message: str = ""


@dataclass
class DatabaseEvidence:
    database: Database
    taken: int = 0
    completed: int = 0
    failed: int = 0
    checksum_verified: int = 0
    restore_tested: int = 0
    with_anomalies: int = 0
    last_completed_at: datetime | None = None
    encryption: dict[str, int] = field(default_factory=dict)
    retention: str = "no schedule: backups are kept until deleted"
    pitr: list[tuple[datetime, datetime]] | None = None  # None: not a PITR database
    pitr_covered_percent: float | None = None
    pitr_span: str = "the month"  # "the month so far" while it lasts
    drills: list[DrillEvidence] | None = None  # None: no drills app

    @property
    def drills_passed(self) -> int:
        return sum(1 for d in self.drills or () if d.passed)

    @property
    def drills_failed(self) -> int:
        return sum(1 for d in self.drills or () if not d.passed)

    @property
    def encryption_text(self) -> str:
        if not self.encryption:
            return "no completed backups"
        return ", ".join(
            f"{ENCRYPTION_NAMES.get(name, name)} ({count})"
            for name, count in sorted(self.encryption.items())
        )


@dataclass
class Evidence:
    organisation: Organisation
    month: date
    start: datetime
    end: datetime
    generated_at: datetime
    encryption_in_force: str
    databases: list[DatabaseEvidence]
    drills_available: bool

    @property
    def month_label(self) -> str:
        return self.month.strftime("%B %Y")

    @property
    def totals(self) -> dict[str, int]:
        names = ("taken", "completed", "failed", "checksum_verified", "restore_tested")
        return {name: sum(getattr(d, name) for d in self.databases) for name in names}


def drills_for_month(*, organisation: Organisation, start: datetime, end: datetime) -> dict:
    """Drills of the organisation's databases that started in [start, end) and ended:
    ``{database id: [DrillEvidence]}``, oldest first, in one query. The one place the report
    reads drills."""
    rows = (
        Drill.objects.filter(
            environment__project__organisation=organisation,
            database__isnull=False,
            started_at__gte=start,
            started_at__lt=end,
            status__in=(DrillStatus.PASSED, DrillStatus.FAILED),
        )
        .order_by("started_at")
        .values_list("database_id", "started_at", "status", "rto_seconds", "message")
    )
    found: dict = {}
    for database_id, started_at, status, rto_seconds, message in rows:
        found.setdefault(database_id, []).append(
            DrillEvidence(
                started_at=started_at,
                passed=status == DrillStatus.PASSED,
                rto_seconds=rto_seconds,
                message=message,
            )
        )
    return found


def retention_text(schedule: Schedule | None) -> str:
    if schedule is None:
        return "no schedule: backups are kept until deleted"
    rules = []
    for name in RETENTION_FIELDS:
        value = getattr(schedule, name)
        if value is not None:
            label = name.removeprefix("retain_").replace("_", " ")
            rules.append(f"{label} {value}")
    text = ", ".join(rules) if rules else "no retain rules: backups are kept until deleted"
    text += f"; newest {schedule.retention_floor} always kept"
    if schedule.wal_enabled:
        days = schedule.wal_retention_days
        text += f"; WAL {'kept ' + str(days) + ' days' if days else 'kept'}"
    if not schedule.enabled or schedule.paused:
        text += " (schedule paused)" if schedule.paused else " (schedule disabled)"
    return text


def _counts(organisation, start, end) -> dict:
    in_month = Q(created_at__gte=start, created_at__lt=end)
    rows = (
        Backup.objects.filter(in_month, organisation=organisation, database__isnull=False)
        .exclude(kind=BackupKind.FULL)
        .values("database_id")
        .annotate(
            taken=Count("id"),
            completed=Count("id", filter=Q(status=BackupStatus.COMPLETED)),
            failed=Count("id", filter=Q(status=BackupStatus.FAILED)),
            checksum_verified=Count("id", filter=Q(verified_at__isnull=False)),
            restore_tested=Count("id", filter=Q(verified_by_restore_at__isnull=False)),
            with_anomalies=Count("id", filter=~Q(anomalies=[])),
            last_completed_at=Max("completed_at", filter=Q(status=BackupStatus.COMPLETED)),
        )
        .order_by()
    )
    return {row.pop("database_id"): row for row in rows}


def _encryptions(organisation, start, end) -> dict:
    rows = (
        Backup.objects.filter(
            organisation=organisation,
            database__isnull=False,
            status=BackupStatus.COMPLETED,
            created_at__gte=start,
            created_at__lt=end,
        )
        .exclude(kind=BackupKind.FULL)
        .values_list("database_id", "encryption")
        .annotate(n=Count("id"))
        .order_by()
    )
    found: dict = {}
    for database_id, encryption, count in rows:
        found.setdefault(database_id, {})[encryption] = count
    return found


def _pitr(database: Database, start: datetime, end: datetime):
    """The month's recoverable windows (clipped to it) and the share of the month covered
    up to now."""
    windows = []
    for window in database_windows(database):
        earliest, latest = max(window.earliest, start), min(window.latest, end)
        if earliest < latest:
            windows.append((earliest, latest))
    windows.sort()
    merged: list[list[datetime]] = []
    for earliest, latest in windows:
        if merged and earliest <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], latest)
        else:
            merged.append([earliest, latest])
    until = min(end, timezone.now())
    span = (until - start).total_seconds()
    covered = sum((b - a).total_seconds() for a, b in merged)
    percent = round(100 * covered / span, 1) if span > 0 else None
    return [tuple(pair) for pair in merged], percent


def evidence_for(*, organisation: Organisation, month: date) -> Evidence:
    """The month's evidence for every database of ``organisation``."""
    start, end = _bounds(month)
    counts = _counts(organisation, start, end)
    encryptions = _encryptions(organisation, start, end)
    schedules = {
        s.environment_id: s
        for s in Schedule.objects.filter(environment__project__organisation=organisation)
    }
    drills = drills_for_month(organisation=organisation, start=start, end=end)
    databases = (
        Database.objects.filter(environment__project__organisation=organisation)
        .select_related("environment__project")
        .defer("password")
        .order_by("environment__project__name", "environment__name", "name")
    )
    rows = []
    for database in databases:
        row = DatabaseEvidence(database=database, **counts.get(database.id, {}))
        row.encryption = encryptions.get(database.id, {})
        schedule = schedules.get(database.environment_id)
        row.retention = retention_text(schedule)
        if database.engine == Engine.POSTGRESQL and schedule is not None and schedule.wal_enabled:
            row.pitr, row.pitr_covered_percent = _pitr(database, start, end)
            row.pitr_span = "the month so far" if end > timezone.now() else "the month"
        if drills is not None:
            row.drills = drills.get(database.id, [])
        rows.append(row)
    in_force = artifact_encryption(organisation)
    return Evidence(
        organisation=organisation,
        month=month,
        start=start,
        end=end,
        generated_at=timezone.now(),
        encryption_in_force=_in_force_text(in_force),
        databases=rows,
        drills_available=drills is not None,
    )


def _in_force_text(encryption) -> str:
    if encryption.key:
        return f"AES-256-GCM (key {encryption.key_id})"
    if encryption.recipients:
        return f"age, to {len(encryption.recipients)} recipient(s)"
    return "none: new backups are stored unencrypted"


# --- rendering --------------------------------------------------------------------------------


def evidence_html(evidence: Evidence, **context) -> str:
    """The printable page; the web page passes its links (``pdf_url``, ``back_url``)."""
    return render_to_string("front/evidence.html", {"evidence": evidence, **context})


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def _pitr_text(row: DatabaseEvidence) -> str:
    if row.pitr is None:
        return "not enabled"
    if not row.pitr:
        return "no recoverable window in the month"
    windows = "; ".join(f"{_when(a)} – {_when(b)}" for a, b in row.pitr)
    return f"{row.pitr_covered_percent}% of {row.pitr_span}: {windows}"


def _anomalies_text(row: DatabaseEvidence) -> str:
    if not row.with_anomalies:
        return "none"
    return f"{row.with_anomalies} backup(s) unlike their recent history"


def _drills_text(row: DatabaseEvidence) -> str:
    if row.drills is None:
        return "no drills (not available in this installation)"
    if not row.drills:
        return "no drills in the month"
    times = ", ".join(
        f"{d.rto_seconds:.0f} s" if d.rto_seconds is not None else "—" for d in row.drills
    )
    return f"{row.drills_passed} passed, {row.drills_failed} failed; recovery times {times}"


class _Report(FPDF):
    def __init__(self, evidence: Evidence):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.evidence = evidence
        if FONT.exists() and BOLD_FONT.exists():
            self.add_font("Body", "", str(FONT))
            self.add_font("Body", "B", str(BOLD_FONT))
            self.family = "Body"
        else:  # the core font writes latin-1 only; others become "?"
            self.family = "Helvetica"
        self.set_title(f"Recovery evidence — {evidence.organisation.name} — {evidence.month_label}")
        self.set_author("Strongbox")
        self.set_auto_page_break(auto=True, margin=15)

    def text_of(self, value: str) -> str:
        if self.family == "Helvetica":
            return value.encode("latin-1", "replace").decode("latin-1")
        return value

    def footer(self):
        self.set_y(-12)
        self.set_font(self.family, "", 8)
        self.set_text_color(110)
        e = self.evidence
        self.cell(
            0,
            5,
            self.text_of(
                f"{e.organisation.name} · {e.month_label} · generated {_when(e.generated_at)}"
                f" · page {self.page_no()}/{{nb}}"
            ),
            align="C",
        )
        self.set_text_color(0)


def evidence_pdf(evidence: Evidence) -> bytes:
    pdf = _Report(evidence)
    text = pdf.text_of
    pdf.add_page()
    pdf.set_font(pdf.family, "B", 16)
    pdf.multi_cell(0, 8, text(f"Recovery evidence: {evidence.organisation.name}"), **NEXT_LINE)
    pdf.set_font(pdf.family, "", 11)
    pdf.multi_cell(
        0,
        6,
        text(
            f"{evidence.month_label} ({_when(evidence.start)} to {_when(evidence.end)}, "
            f"exclusive). Generated {_when(evidence.generated_at)}. Encryption of new backups "
            f"in force: {evidence.encryption_in_force}."
        ),
        **NEXT_LINE,
    )
    totals = evidence.totals
    pdf.ln(2)
    pdf.multi_cell(
        0,
        6,
        text(
            f"All databases: {totals['taken']} backups taken, {totals['completed']} completed, "
            f"{totals['failed']} failed, {totals['checksum_verified']} checksum-verified, "
            f"{totals['restore_tested']} test-restored."
        ),
        **NEXT_LINE,
    )
    if not evidence.databases:
        pdf.ln(4)
        pdf.multi_cell(0, 6, text("The organisation has no databases."), **NEXT_LINE)
    heading = FontFace(emphasis="BOLD", fill_color=(232, 240, 252))
    for row in evidence.databases:
        db = row.database
        if pdf.get_y() + SECTION_HEIGHT > pdf.h - pdf.b_margin:
            pdf.add_page()  # a database's heading and table stay on one page
        pdf.ln(4)
        pdf.set_font(pdf.family, "B", 12)
        pdf.multi_cell(
            0,
            7,
            text(
                f"{db.environment.project.name} / {db.environment.name} / {db.name} "
                f"({db.get_engine_display()})"
            ),
            **NEXT_LINE,
        )
        pdf.set_font(pdf.family, "", 9)
        facts = [
            ("Backups taken", str(row.taken)),
            ("Completed / failed", f"{row.completed} / {row.failed}"),
            (
                "Verified",
                f"{row.checksum_verified} checksum-verified, {row.restore_tested} test-restored",
            ),
            ("Last completed", _when(row.last_completed_at)),
            ("Anomalies", _anomalies_text(row)),
            ("Drills", _drills_text(row)),
            ("Retention in force", row.retention),
            ("Encryption", row.encryption_text),
            ("PITR coverage", _pitr_text(row)),
        ]
        with pdf.table(
            col_widths=(45, 135), headings_style=heading, first_row_as_headings=False
        ) as table:
            for label, value in facts:
                cells = table.row()
                cells.cell(text(label), style=heading)
                cells.cell(text(value))
    return bytes(pdf.output())


def document_response(evidence, fmt: str) -> HttpResponse:
    """The report as the HTTP answer both the API and the page give."""
    if fmt == "pdf":
        response = HttpResponse(evidence_pdf(evidence), content_type="application/pdf")
        name = f"evidence-{evidence.organisation.slug}-{evidence.month:%Y-%m}.pdf"
        response["Content-Disposition"] = f'inline; filename="{name}"'
    else:
        response = HttpResponse(evidence_html(evidence), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response
