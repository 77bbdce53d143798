"""Liveness, readiness and Prometheus metrics for operators and orchestrators. They read
several apps, so they live with the composed pages rather than in ``config``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from django_q.brokers import get_broker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.keyring import master_keys
from destinations.models import Destination
from front.metrics import registry as metrics_registry


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
    """Prometheus text exposition of ``front.metrics.registry``."""
    if not _metrics_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(metrics_registry), content_type=CONTENT_TYPE_LATEST)
