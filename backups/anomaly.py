"""Anomaly alerts: a completed backup compared with its series' recent history.

A backup that "succeeded" can still be useless: a table truncated by a bad migration, a
database emptied by mistake, rows encrypted in place by ransomware. Each of these changes
the dump in a way its own history shows, so every completed backup is compared with the
median of the last ``history`` completed backups of its series (the same database and kind;
a files or ``full`` backup: the same environment and kind). The median, not the mean: one
odd backup in the window does not move it.

The rules (``judge``, pure; thresholds per database, defaults in settings):

- **empty**: a dump with no rows at all, when a backup of the window had rows. Always an
  anomaly, whatever the thresholds, and judged from the first history point on.
- Nothing else is judged before ``min_history`` (3) points exist.
- **size**: the stored size below ``drop_percent`` (50) % or above ``jump_percent`` (200) %
  of the median, and at least ``min_bytes`` (64 KiB) away from it (a 2 KB dump that
  becomes 5 KB is noise, not an incident).
- **rows**: per table, the row count below ``drop_percent`` % or above ``jump_percent`` %
  of that table's median, and at least ``min_rows`` (100) rows away from it: 2 → 5 rows is
  not an alarm, 10,000 → 2,000 is. A table is judged once it appears in ``min_history``
  backups of the window; a judged table missing from the dump counts as 0 rows (dropped).
- **compression**: the ratio of raw dump bytes to stored bytes below
  ``compression_drop_percent`` (50) % of the median ratio, among backups compressed the
  same way and at least ``min_bytes`` raw. Text rows compress several times over; rows
  encrypted in place do not compress at all, so the ratio falls while size and counts may
  stay the same.

A backup judged anomalous stays ``completed``: it may be exactly the backup one needs. It
records what was found (``Backup.anomalies``, shown by the API and pages) and raises one
``backup_size_anomaly`` alert. The comparison (``judge``) is pure; the service at the end
(``backup_anomalies_check``, which the execution core calls once a backup completed) reads
the history in one query.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from statistics import median

from django.conf import settings
from django.db import transaction

from alerts.models import AlertKind, Severity
from alerts.services import alert_raise
from backups.models import Backup, BackupStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Thresholds:
    history: int = 7
    min_history: int = 3
    drop_percent: int = 50
    jump_percent: int = 200
    min_rows: int = 100
    compression_drop_percent: int = 50
    min_bytes: int = 65536


@dataclass(frozen=True)
class Point:
    """What one backup's judgement reads: stored size, raw (dump) bytes, compression, rows."""

    size: int
    raw: int
    compression: str = ""
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def ratio(self) -> float | None:
        if self.size <= 0 or self.raw <= 0 or self.compression in ("", "none"):
            return None
        return self.raw / self.size


def _outside(value: float, middle: float, t: Thresholds) -> str | None:
    """ "below" or "above" when ``value`` leaves the band around ``middle``, else None."""
    if value * 100 < middle * t.drop_percent:
        return "below"
    if value * 100 > middle * t.jump_percent:
        return "above"
    return None


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _finding(measure: str, value, middle, message: str, table: str | None = None) -> dict:
    return {
        "measure": measure,
        "table": table,
        "value": value,
        "median": middle,
        "message": message,
    }


def _empty(current: Point, history: list[Point]) -> dict | None:
    had_rows = max((p.total_rows for p in history), default=0)
    if current.total_rows == 0 and had_rows > 0:
        middle = median(p.total_rows for p in history)
        return _finding(
            "empty",
            0,
            middle,
            f"the dump holds no rows; recent backups held {_number(middle)} rows (median)",
        )
    return None


def _size(current: Point, history: list[Point], t: Thresholds) -> dict | None:
    middle = median(p.size for p in history)
    side = _outside(current.size, middle, t)
    if side and abs(current.size - middle) >= t.min_bytes:
        return _finding(
            "size",
            current.size,
            middle,
            f"size {_number(current.size)} bytes is {side} the band of {t.drop_percent}%–"
            f"{t.jump_percent}% of the median {_number(middle)} bytes",
        )
    return None


def _compression(current: Point, history: list[Point], t: Thresholds) -> dict | None:
    ratio = current.ratio
    if ratio is None or current.raw < t.min_bytes:
        return None
    ratios = [
        p.ratio
        for p in history
        if p.ratio is not None and p.compression == current.compression and p.raw >= t.min_bytes
    ]
    if len(ratios) < t.min_history:
        return None
    middle = median(ratios)
    if ratio * 100 < middle * t.compression_drop_percent:
        return _finding(
            "compression",
            round(ratio, 2),
            round(middle, 2),
            f"compression ratio {ratio:.2f}x fell below {t.compression_drop_percent}% of the "
            f"median {middle:.2f}x (data that no longer compresses: encrypted or random rows?)",
        )
    return None


def _tables(current: Point, history: list[Point], t: Thresholds) -> list[dict]:
    found = []
    tables = sorted({table for p in history for table in p.rows})
    for table in tables:
        counts = [p.rows[table] for p in history if table in p.rows]
        if len(counts) < t.min_history:
            continue
        middle = median(counts)
        value = current.rows.get(table, 0)
        side = _outside(value, middle, t)
        if side and abs(value - middle) >= t.min_rows:
            found.append(
                _finding(
                    "rows",
                    value,
                    middle,
                    f"table {table}: {_number(value)} rows is {side} the band of "
                    f"{t.drop_percent}%–{t.jump_percent}% of the median {_number(middle)} rows",
                    table=table,
                )
            )
    return found


def judge(current: Point, history: list[Point], thresholds: Thresholds) -> list[dict]:
    """What is anomalous about ``current`` against ``history`` (newest first, without it):
    a list of findings ``{measure, table, value, median, message}``, empty when none."""
    if not history:
        return []
    empty = _empty(current, history)
    if len(history) < thresholds.min_history:
        return [empty] if empty else []
    found = [f for f in (empty, _size(current, history, thresholds)) if f]
    compression = _compression(current, history, thresholds)
    if compression:
        found.append(compression)
    if not empty:  # an empty dump says it all: every table would repeat it
        found += _tables(current, history, thresholds)
    return found


# --- the service ------------------------------------------------------------------------------


def thresholds_for(backup: Backup) -> Thresholds:
    """The defaults from settings, with the backup's database's own values where set."""
    values = {
        "history": settings.STRONGBOX_ANOMALY_HISTORY,
        "min_history": settings.STRONGBOX_ANOMALY_MIN_HISTORY,
        "drop_percent": settings.STRONGBOX_ANOMALY_DROP_PERCENT,
        "jump_percent": settings.STRONGBOX_ANOMALY_JUMP_PERCENT,
        "min_rows": settings.STRONGBOX_ANOMALY_MIN_ROWS,
        "compression_drop_percent": settings.STRONGBOX_ANOMALY_COMPRESSION_DROP_PERCENT,
        "min_bytes": settings.STRONGBOX_ANOMALY_MIN_BYTES,
    }
    database = backup.database
    if database is not None:
        for name in ("drop_percent", "jump_percent", "min_rows", "compression_drop_percent"):
            own = getattr(database, f"anomaly_{name}")
            if own is not None:
                values[name] = own
    return Thresholds(**values)


def _point(size, raw, compression, rows) -> Point:
    return Point(size=size or 0, raw=raw or 0, compression=compression or "", rows=rows or {})


def series_history(backup: Backup, limit: int) -> list[Point]:
    """The last ``limit`` completed backups of ``backup``'s series before it, newest first,
    in one query of four columns."""
    series = Backup.objects.filter(kind=backup.kind, status=BackupStatus.COMPLETED)
    if backup.database_id:
        series = series.filter(database_id=backup.database_id)
    else:
        series = series.filter(environment_id=backup.environment_id, database__isnull=True)
    rows = (
        series.filter(created_at__lt=backup.created_at)
        .exclude(pk=backup.pk)
        .order_by("-created_at", "-id")
        .values_list("size", "bytes_done", "compression", "row_counts")[:limit]
    )
    return [_point(*row) for row in rows]


def backup_anomalies_check(*, backup: Backup) -> list[dict]:
    """Judge a just completed backup against its series; record the findings on it and
    raise one ``backup_size_anomaly`` alert naming them. The backup stays completed."""
    database = backup.database
    if database is not None and not database.anomaly_checks:
        return []
    thresholds = thresholds_for(backup)
    current = _point(backup.size, backup.bytes_done, backup.compression, backup.row_counts)
    found = judge(current, series_history(backup, thresholds.history), thresholds)
    if not found:
        return []
    with transaction.atomic():
        Backup.objects.filter(pk=backup.pk).update(anomalies=found)
        backup.anomalies = found
        alert_raise(
            organisation=backup.organisation,
            kind=AlertKind.BACKUP_SIZE_ANOMALY,
            title=f"Backup {backup.name} is unlike its recent history",
            message="; ".join(f["message"] for f in found),
            backup=backup,
            severity=Severity.CRITICAL
            if any(f["measure"] == "empty" for f in found)
            else Severity.WARNING,
        )
    logger.warning("backup %s: anomalies: %s", backup.id, [f["message"] for f in found])
    return found
