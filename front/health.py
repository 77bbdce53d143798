"""Liveness, readiness and Prometheus metrics for operators and orchestrators. They read
several apps, so they live with the composed pages rather than in ``config``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Sum
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker

from backups.models import Backup, BackupStatus, WalSegment
from config.keyring import master_keys
from destinations.models import Destination


@require_GET
def live(request):
    """The process answers: nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return str(exc)
    return None


def _check_broker() -> str | None:
    try:
        return None if get_broker().ping() else "the broker did not answer"
    except Exception as exc:  # noqa: BLE001
        return str(exc)


def _check_local_destination() -> str | None:
    root = Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return str(exc)
    return None if os.access(root, os.W_OK) else f"{root} is not writable"


def _encryption() -> dict:
    """Whether new backups are encrypted: unencrypted ones are allowed, never silent."""
    count = len(master_keys())
    return {"backups": "encrypted" if count else "unencrypted", "masterKeys": count}


@require_GET
def ready(request):
    """Database and broker reachable, the local artifact root writable; destinations whose
    last connection test failed are listed, and whether backups are stored unencrypted
    (neither makes the process unready)."""
    checks = {
        "database": _check_database(),
        "broker": _check_broker(),
        "localDestination": _check_local_destination(),
    }
    failing_destinations = []
    if checks["database"] is None:
        failing_destinations = [
            {"id": str(d.id), "name": d.name, "error": d.last_check_error}
            for d in Destination.objects.exclude(last_check_error="").only(
                "id", "name", "last_check_error"
            )
        ]
    ok = all(value is None for value in checks.values())
    body = {
        "status": "ok" if ok else "unavailable",
        "checks": {name: (error or "ok") for name, error in checks.items()},
        "destinationsFailing": failing_destinations,
        "encryption": _encryption(),
    }
    return JsonResponse(body, status=200 if ok else 503)


def _metrics_allowed(request) -> bool:
    token = settings.STRONGBOX_METRICS_TOKEN
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    return secrets.compare_digest(header, f"Bearer {token}")


@require_GET
def metrics(request):
    """Prometheus text exposition (no client library needed for these few series)."""
    if not _metrics_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    lines = [
        "# HELP strongbox_backups Backups by status.",
        "# TYPE strongbox_backups gauge",
    ]
    by_status = dict(Backup.objects.values_list("status").annotate(n=Count("id")))
    for status in BackupStatus.values:
        lines.append(f'strongbox_backups{{status="{status}"}} {by_status.get(status, 0)}')
    day_ago = timezone.now() - timezone.timedelta(days=1)
    recent = Backup.objects.filter(
        status=BackupStatus.COMPLETED, completed_at__gte=day_ago, started_at__isnull=False
    )
    durations = [
        (b.completed_at - b.started_at).total_seconds()
        for b in recent.only("started_at", "completed_at")[:10000]
    ]
    stored = Backup.objects.filter(status=BackupStatus.COMPLETED).aggregate(total=Sum("size"))
    lines += [
        "# HELP strongbox_backup_duration_seconds Durations of backups completed in 24 hours.",
        "# TYPE strongbox_backup_duration_seconds summary",
        f"strongbox_backup_duration_seconds_sum {sum(durations):.3f}",
        f"strongbox_backup_duration_seconds_count {len(durations)}",
        "# HELP strongbox_backup_stored_bytes Bytes held by completed backups (one copy).",
        "# TYPE strongbox_backup_stored_bytes gauge",
        f"strongbox_backup_stored_bytes {stored['total'] or 0}",
    ]
    try:
        depth = get_broker().queue_size()
    except Exception:  # noqa: BLE001 - an unreachable broker shows as -1
        depth = -1
    lines += [
        "# HELP strongbox_queue_depth Tasks waiting in the broker.",
        "# TYPE strongbox_queue_depth gauge",
        f"strongbox_queue_depth {depth}",
    ]
    lines += _wal_lag_lines()
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")


def _wal_lag_lines() -> list[str]:
    """WAL archiving lag per database, when PITR archiving is in use."""
    lines = [
        "# HELP strongbox_wal_archive_age_seconds Seconds since the newest archived segment.",
        "# TYPE strongbox_wal_archive_age_seconds gauge",
    ]
    now = timezone.now()
    field = "stored_at" if hasattr(WalSegment, "stored_at") else "created_at"
    for database_id, newest in (
        WalSegment.objects.values_list("database_id").annotate(newest=Max(field)).order_by()
    ):
        if newest is not None:
            age = (now - newest).total_seconds()
            lines.append(f'strongbox_wal_archive_age_seconds{{database="{database_id}"}} {age:.0f}')
    return lines
