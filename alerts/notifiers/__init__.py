"""Notification integrations: one small module per channel kind, loaded by kind.

Each module has ``send(*, channel, alert) -> DeliveryResult``. It reports failures in the
result instead of raising, and says whether another attempt later could help (a timeout
or a 503 may; a refused address or a 400 will not).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

NOTIFIERS = {
    "email": "alerts.notifiers.email",
    "webhook": "alerts.notifiers.webhook",
}


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    status_code: int | None = None
    error: str = ""
    retry: bool = False


def notifier_for(kind: str) -> ModuleType:
    try:
        return importlib.import_module(NOTIFIERS[kind])
    except KeyError:
        raise ValueError(f"No notifier for channel kind {kind!r}.") from None
