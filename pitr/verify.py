"""Verify the WAL archive itself, in the spirit of pgBackRest's ``verify``.

Coverage is built from Strongbox's own records of archived files; this module checks those
records against the destinations, so that a file removed or damaged there shows up as a gap
before a recovery needs it:

1. **Listing** (cheap, every run, every file): one listing per destination and WAL folder
   (S3: one ListObjectsV2 call per 1,000 keys; local: one directory scan) must show each
   file the archive recorded there, with its recorded stored size.
2. **Re-read** (rolling, within a byte budget per run): the least recently verified files
   are read back whole from every destination and their SHA-256 compared with the one
   recorded when they were stored. ``WalSegment.verified_at`` is where the re-read got to:
   the next run goes on with the files verified longest ago (never-verified ones first).

A file a destination lacks, or holds with another size or checksum, gets its ``problem``
(per destination). When no destination holds an intact copy it is ``lost``: coverage treats
it as never archived (``pitr.coverage``), which shrinks the window and shows the gap, and
the gap alert is raised (``pitr.retention.pitr_monitor`` raises it for every gap; this
module raises it at once too). A destination that cannot be asked is an error of the run,
never a verdict on its files. A later run that finds the file intact again clears both.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.models import WalSegment
from destinations.backends import DestinationBackends
from destinations.models import Destination
from destinations.storage import ArtifactMissing, artifact_sizes, open_artifact_stream
from organizations.models import Database
from pitr.archive import gap_key

logger = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


@dataclass
class VerifyReport:
    """What one verification run did and found (also what ``manage.py verify_wal`` prints)."""

    databases: int = 0
    listed: int = 0
    listing_calls: int = 0
    listing_seconds: float = 0.0
    reread: int = 0
    reread_bytes: int = 0
    reread_seconds: float = 0.0
    problems: dict[str, str] = field(default_factory=dict)  # WAL name -> what is wrong
    lost: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def merge(self, other: VerifyReport) -> None:
        for name in ("databases", "listed", "listing_calls", "reread", "reread_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.listing_seconds += other.listing_seconds
        self.reread_seconds += other.reread_seconds
        self.problems.update(other.problems)
        self.lost += other.lost
        self.errors += other.errors


def wal_verify(
    *,
    database: Database,
    reread_budget: int | None = None,
    now: datetime | None = None,
    alert: bool = True,
) -> VerifyReport:
    """List every archived WAL file of ``database`` in each of its destinations, then re-read
    up to ``reread_budget`` bytes of the least recently verified (default
    ``STRONGBOX_WAL_VERIFY_BYTES_PER_RUN``; 0: listing only). Records what it finds on the
    rows and raises or resolves the alerts."""
    now = now or timezone.now()
    budget = settings.STRONGBOX_WAL_VERIFY_BYTES_PER_RUN if reread_budget is None else reread_budget
    report = VerifyReport(databases=1)
    segments = list(
        WalSegment.objects.filter(database=database).only(
            "id", "name", "key", "stored_size", "artifact_sha256", "problem", "lost"
        )
    )
    _attach_copies(database, segments)
    backends = DestinationBackends()
    findings: dict = defaultdict(dict)  # segment id -> {destination name: problem or None}
    unreachable: set = set()
    _list(segments, backends, findings, unreachable, report)
    if budget > 0:
        _reread(database, segments, backends, findings, unreachable, budget, report)
    _record(segments, findings, unreachable, now, report)
    if alert:
        _alert(database, segments, report)
    return report


def wal_verify_all(
    *, reread_budget: int | None = None, databases=None, now: datetime | None = None
) -> VerifyReport:
    """``wal_verify`` of every database with archived WAL (or of ``databases``); one failing
    database is an error of the report, the others still run."""
    if databases is None:
        databases = Database.objects.filter(
            pk__in=WalSegment.objects.filter(database__isnull=False).values("database")
        ).select_related("environment__project__organisation")
    total = VerifyReport()
    for database in databases:
        try:
            total.merge(wal_verify(database=database, reread_budget=reread_budget, now=now))
        except Exception as exc:  # noqa: BLE001 - the next database still gets verified
            logger.exception("verifying the WAL of %s failed", database.pk)
            total.errors.append(f"{database.name}: {type(exc).__name__}: {exc}")
    return total


# --- the two checks ----------------------------------------------------------------------------


def _attach_copies(database: Database, segments: list[WalSegment]) -> None:
    """``segment.copies``: the destinations it was stored in, from one query of the M2M
    table and one of the destinations (a prefetch costs a queryset per segment)."""
    through = WalSegment.destinations.through
    pairs = list(
        through.objects.filter(walsegment__database=database).values_list(
            "walsegment_id", "destination_id"
        )
    )
    destinations = {d.pk: d for d in Destination.objects.filter(pk__in={d for _, d in pairs})}
    copies: dict = defaultdict(list)
    for segment_id, destination_id in pairs:
        copies[segment_id].append(destinations[destination_id])
    for segment in segments:
        segment.copies = copies.get(segment.pk, [])


def _list(segments, backends, findings, unreachable, report: VerifyReport) -> None:
    """One listing per (destination, folder): is every file there with its stored size?"""
    started = time.monotonic()
    folders: dict = defaultdict(list)
    for segment in segments:
        for destination in segment.copies:
            folders[(destination, posixpath.dirname(segment.key))].append(segment)
    for (destination, folder), members in folders.items():
        if destination.pk in unreachable:
            continue
        try:
            sizes = artifact_sizes(backends[destination], folder)
        except Exception as exc:  # noqa: BLE001 - no verdict on files we could not ask for
            unreachable.add(destination.pk)
            report.errors.append(f"{destination.name}: cannot list {folder}: {exc}")
            continue
        report.listing_calls += max(1, -(-len(sizes) // 1000))
        for segment in members:
            stored = sizes.get(segment.key)
            if stored is None:
                problem = "missing"
            elif stored != segment.stored_size:
                problem = f"stored {stored} bytes, {segment.stored_size} recorded"
            else:
                problem = None
            findings[segment.pk][destination.name] = problem
            report.listed += 1
    report.listing_seconds += time.monotonic() - started


def _reread(database, segments, backends, findings, unreachable, budget, report) -> None:
    """Read back whole the least recently verified files the listing found, up to ``budget``
    bytes (at least one file), and compare their SHA-256 with the recorded one."""
    started = time.monotonic()
    by_id = {s.pk: s for s in segments}
    queue = (
        WalSegment.objects.filter(database=database, lost=False)
        .order_by(F("verified_at").asc(nulls_first=True), "stored_at")
        .values_list("pk", flat=True)
    )
    spent = 0
    for pk in queue.iterator(chunk_size=500):
        segment = by_id.get(pk)
        if segment is None:
            continue
        copies = segment.copies
        if spent and spent + segment.stored_size * len(copies) > budget:
            break  # the budget counts bytes read: one file costs its size once per copy
        for destination in copies:
            if destination.pk in unreachable or findings[pk].get(destination.name):
                continue  # not reachable, or the listing already found it missing
            try:
                digest, size = _artifact_digest(backends[destination], segment.key)
            except ArtifactMissing:
                findings[pk][destination.name] = "missing"
                continue
            except Exception as exc:  # noqa: BLE001 - a read error says nothing of the file
                unreachable.add(destination.pk)
                report.errors.append(f"{destination.name}: cannot read {segment.name}: {exc}")
                continue
            spent += size
            report.reread_bytes += size
            if segment.artifact_sha256 and digest != segment.artifact_sha256:
                findings[pk][destination.name] = (
                    f"checksum mismatch (sha256 {digest[:12]}…, {segment.artifact_sha256[:12]}… "
                    "recorded)"
                )
            else:
                findings[pk].setdefault(destination.name, None)
                findings[pk]["__reread__"] = True
        report.reread += 1
    report.reread_seconds += time.monotonic() - started


def _artifact_digest(backend, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open_artifact_stream(backend, key) as raw:
        while chunk := raw.read(READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- what it found -----------------------------------------------------------------------------


def _record(segments, findings, unreachable, now, report: VerifyReport) -> None:
    """Write each file's verdict: intact everywhere it was asked (``checked_at``, and
    ``verified_at`` after a re-read), or its problems and whether any copy is left."""
    intact, reread = [], []
    for segment in segments:
        found = findings.get(segment.pk, {})
        destinations = segment.copies
        if not destinations:
            continue  # recorded nowhere (rows without files): nothing to ask
        problems = {d: p for d, p in found.items() if p and d != "__reread__"}
        if not problems:
            if found:  # asked at least one destination; the others could not be asked
                intact.append(segment.pk)
                if found.get("__reread__"):
                    reread.append(segment.pk)
            continue
        lost = _is_lost(segment, destinations, set(problems), unreachable)
        text = "; ".join(f"{d}: {p}" for d, p in sorted(problems.items()))
        WalSegment.objects.filter(pk=segment.pk).update(
            problem=text[:4000], lost=lost, checked_at=now
        )
        segment.problem, segment.lost = text, lost
        report.problems[segment.name] = text
        if lost:
            report.lost.append(segment.name)
    for chunk in _chunks(intact):
        WalSegment.objects.filter(pk__in=chunk).update(checked_at=now, problem="", lost=False)
    for chunk in _chunks(reread):
        WalSegment.objects.filter(pk__in=chunk).update(verified_at=now)
    intact_ids = set(intact)
    for segment in segments:
        if segment.pk in intact_ids:
            segment.problem, segment.lost = "", False


def _is_lost(segment, destinations, bad: set, unreachable: set) -> bool:
    """No intact copy left: every destination lacks it or holds it damaged."""
    if {d.name for d in destinations} <= bad:
        return True
    if all(d.name in bad or d.pk in unreachable for d in destinations):
        return segment.lost  # the copies left could not be asked: no new verdict
    return False


def _chunks(ids: list, size: int = 500):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def verify_key(database: Database) -> str:
    return f"{AlertKind.WAL_ARCHIVING_FAILED}:verify:database:{database.pk}"


def _alert(database: Database, segments, report: VerifyReport) -> None:
    """A lost file is a gap (the gap alert, critical); a file only some destinations lack
    or hold damaged is a warning of its own: recovery still works from the others."""
    organisation = database.environment.project.organisation
    lost = sorted(s.name for s in segments if s.lost)
    damaged = sorted(s.name for s in segments if s.problem and not s.lost)
    if lost:
        first = next(s for s in segments if s.name == lost[0])
        alert_raise(
            organisation=organisation,
            kind=AlertKind.WAL_ARCHIVING_FAILED,
            title=f"Gap in the WAL archive of {database.name}",
            message=(
                f"{len(lost)} archived WAL file(s) no destination holds intact any more; first: "
                f"{first.name} ({first.problem}). Point-in-time recovery cannot cross it."
            )[:2000],
            environment=database.environment,
            severity="critical",
            dedup_key=gap_key(database),
        )
    if damaged:
        first = next(s for s in segments if s.name == damaged[0])
        alert_raise(
            organisation=organisation,
            kind=AlertKind.WAL_ARCHIVING_FAILED,
            title=f"WAL copies of {database.name} are missing or damaged",
            message=(
                f"{len(damaged)} WAL file(s) are not intact in every destination; first: "
                f"{first.name} ({first.problem}). Recovery still reads them from the others."
            )[:2000],
            environment=database.environment,
            severity="warning",
            dedup_key=verify_key(database),
        )
    elif not report.errors:
        alert_resolve(organisation=organisation, dedup_key=verify_key(database))
