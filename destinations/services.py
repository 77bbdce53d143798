"""Writes to destinations: create, update, delete, and the connection test.

A destination's parameters are split by its backend: the ``sensitive_parameters``
go to ``secrets`` (encrypted at rest, never shown back), the others to ``config``.
Every problem is an ``InvalidInput`` naming ``parameters.<name>``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record, changes
from config.errors import Conflict, InvalidInput
from destinations.backends import BACKENDS, DestinationBackend, backend_for
from destinations.models import Destination, DestinationKind
from organizations.hostpolicy import HostNotAllowed, host_rules, url_problem
from organizations.models import Organisation
from organizations.validators import (
    PathNotAllowed,
    require_destination_paths,
    require_destination_values,
)

logger = logging.getLogger(__name__)

PROBE_PREFIX = ".strongbox-probe"


def _backend_class(kind: str):
    try:
        return BACKENDS[kind]
    except KeyError:
        allowed = ", ".join(sorted(BACKENDS))
        message = f"Unknown destination kind {kind!r}; use one of {allowed}."
        raise InvalidInput(message, fields={"kind": [message]}) from None


def _split(kind: str, parameters: Mapping) -> tuple[dict, dict]:
    backend = _backend_class(kind)
    problems = {}
    config, secrets = {}, {}
    for name, value in parameters.items():
        if value is not None and not isinstance(value, str):
            problems[f"parameters.{name}"] = [f"{name} must be a string."]
            continue
        target = secrets if name in backend.sensitive_parameters else config
        if value not in (None, ""):
            target[name] = value.strip() if name not in backend.sensitive_parameters else value
    if problems:
        raise InvalidInput("Invalid destination parameters.", fields=problems)
    return config, secrets


def _validate(kind: str, config: dict, secrets: dict, organisation: Organisation) -> None:
    problems = _backend_class(kind).validate(config, secrets)
    endpoint = config.get("endpoint_url")
    # The host policy, for an endpoint whose syntax the backend took.
    if kind == DestinationKind.S3 and endpoint and "endpoint_url" not in problems:
        if problem := url_problem(organisation, endpoint):
            problems["endpoint_url"] = problem
    path = config.get("path")
    if kind == DestinationKind.LOCAL and path:
        if not PurePosixPath(path).is_absolute():
            problems["path"] = "path must be an absolute directory, e.g. /srv/backups."
        else:
            try:
                require_destination_values(organisation, kind, config, field="path")
            except PathNotAllowed as exc:
                problems["path"] = exc.message
    _raise_problems(problems)


def _raise_problems(problems: dict[str, str]) -> None:
    if problems:
        fields = {f"parameters.{name}": [problem] for name, problem in sorted(problems.items())}
        message = " ".join(problem for _, problem in sorted(problems.items()))
        raise InvalidInput(message, fields=fields)


def destination_object_lock_problem(
    *, organisation: Organisation, kind: str, config: Mapping, secrets: Mapping
) -> str | None:
    """Why the store cannot take the object lock the parameters ask for, or None: the
    bucket is asked (GetObjectLockConfiguration) with the connection test's short timeouts;
    an endpoint that does not answer is "not reachable", after the same minimum time."""
    backend = _backend_class(kind)(
        config=config, secrets=secrets, host_rules=lambda: host_rules(organisation.pk)
    )
    if backend.lock_until(planned=None, now=timezone.now()) is None:
        return None  # no lock asked for: nothing to check
    started = time.monotonic()
    try:
        storage = backend.probe_storage()
        return backend.object_lock_problem(storage)
    except Exception as exc:  # noqa: BLE001 - any failure to answer is the answer
        if not _unreachable(backend, exc):
            return f"could not check the bucket's object lock: {type(exc).__name__}: {exc}"
        minimum = UNREACHABLE_ANSWER_SECONDS
        if minimum is None:
            minimum = backend.probe_wait_seconds()
        time.sleep(max(0.0, started + minimum - time.monotonic()))
        return f"could not check the bucket's object lock: {NOT_REACHABLE}"


def _require_object_lock(kind: str, config: dict, secrets: dict, organisation) -> None:
    problem = destination_object_lock_problem(
        organisation=organisation, kind=kind, config=config, secrets=secrets
    )
    _raise_problems({"object_lock_mode": problem} if problem else {})


def _check_name(organisation: Organisation, name: str, exclude=None) -> None:
    clash = Destination.objects.filter(organisation=organisation, name=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    if clash.exists():
        message = f"A destination called {name!r} already exists."
        raise InvalidInput(message, fields={"name": [message]})


def destination_create(
    *,
    organisation: Organisation,
    name: str,
    kind: str,
    parameters: Mapping,
    is_default: bool = False,
) -> Destination:
    config, secrets = _split(kind, parameters)
    _validate(kind, config, secrets, organisation)
    _check_name(organisation, name)
    _require_object_lock(kind, config, secrets, organisation)
    with transaction.atomic():
        destination = Destination.objects.create(
            organisation=organisation,
            name=name,
            kind=kind,
            config=config,
            secrets=secrets,
            is_default=is_default,
        )
        destination_record_created(destination=destination)
    return destination


def destination_audited_values(destination: Destination) -> dict:
    """What the audit log compares before and after a change (never a secret)."""
    return {
        "name": destination.name,
        "is_default": destination.is_default,
        **{f"parameters.{key}": value for key, value in destination.config.items()},
    }


def destination_update(
    *,
    destination: Destination,
    name: str | None = None,
    parameters: Mapping | None = None,
    is_default: bool | None = None,
) -> Destination:
    """Change a destination. ``parameters`` are merged: a parameter left out keeps its value
    (so secrets need not be sent again), ``null`` or ``""`` removes it."""
    before = destination_audited_values(destination)
    secrets_changed: list[str] = []
    if name is not None and name != destination.name:
        _check_name(destination.organisation, name, exclude=destination)
        destination.name = name
    if parameters is not None:
        backend = _backend_class(destination.kind)
        config, secrets = dict(destination.config), dict(destination.secrets)
        new_config, new_secrets = _split(destination.kind, parameters)
        for key, value in parameters.items():
            if value in (None, ""):
                target = secrets if key in backend.sensitive_parameters else config
                target.pop(key, None)
        config.update(new_config)
        secrets.update(new_secrets)
        _validate(destination.kind, config, secrets, destination.organisation)
        _require_object_lock(destination.kind, config, secrets, destination.organisation)
        old_secrets = destination.secrets
        secrets_changed = sorted(
            key for key in {*old_secrets, *secrets} if old_secrets.get(key) != secrets.get(key)
        )
        destination.config, destination.secrets = config, secrets
    if is_default is not None:
        destination.is_default = is_default
    with transaction.atomic():
        destination.save()
        destination_record_change(
            destination=destination, before=before, sensitive_changed=secrets_changed
        )
    return destination


def destination_record_change(
    *, destination: Destination, before: dict, sensitive_changed: list[str]
) -> None:
    """``destination.update`` with what changed and the names of the secrets that did
    (nothing when nothing did); ``destination_update`` and the admin call it."""
    details = changes(before, destination_audited_values(destination))
    if sensitive_changed:
        details["sensitive_parameters_changed"] = sorted(sensitive_changed)
    if details["before"] or details["after"] or sensitive_changed:
        audit_record(
            organisation=destination.organisation_id,
            action="destination.update",
            obj=destination,
            details=details,
        )


def destination_record_created(*, destination: Destination) -> None:
    audit_record(
        organisation=destination.organisation_id,
        action="destination.create",
        obj=destination,
        details={
            "kind": destination.kind,
            "is_default": destination.is_default,
            "parameters": destination.config,
            # Which secrets were given, never their values.
            "sensitive_parameters": sorted(destination.secrets),
        },
    )


def destination_record_deleted(*, destination: Destination) -> None:
    audit_record(
        organisation=destination.organisation_id,
        action="destination.delete",
        obj=destination,
        details={"kind": destination.kind},
    )


def destination_delete(*, destination: Destination) -> None:
    """Refuse while artifacts or schedules still depend on the destination."""
    held = destination.copies.held().count()
    if held:
        raise Conflict(
            f"{destination.name} still holds {held} backup copy(ies); delete those backups first."
        )
    with transaction.atomic():
        destination_record_deleted(destination=destination)
        destination.copies.all().delete()  # records of copies already deleted
        destination.delete()


# A person is waiting for the test: the backend's probe Storage tries each call once, with
# the configured timeouts (STRONGBOX_S3_*), so an endpoint that does not answer fails in
# seconds. Every "not reachable" answer takes at least as long as the longest such wait (the
# backend's ``probe_wait_seconds``; this, when set), so a refused port, a host the policy
# refuses, a filtered port and one that accepts and stays silent cannot be told apart by
# timing.
UNREACHABLE_ANSWER_SECONDS: float | None = None
NOT_REACHABLE = "not reachable"


class ObjectLockUnavailable(Exception):
    """The destination asks for object lock; its bucket cannot lock."""


def _unreachable(backend: DestinationBackend | None, exc: BaseException) -> bool:
    """Did the endpoint fail to answer at all (policy, DNS, refused, filtered, reset, or a
    service that does not speak HTTP)? Only an answer in the store's own terms is shown:
    anything more would tell a tenant which ports of the network are open."""
    if isinstance(exc, HostNotAllowed):
        return True
    return backend is not None and backend.unreachable(exc)


@dataclass(frozen=True)
class DestinationTestResult:
    ok: bool
    message: str
    step: str | None  # where it failed: connect, object lock, write, read, compare or delete
    duration_ms: int


def destination_test(*, destination: Destination) -> DestinationTestResult:
    """Write, read back and delete a small probe object through the backend's Storage.

    An endpoint that does not answer (refused by the host policy, closed, filtered) is
    "connect failed: not reachable", whatever the cause, after the same minimum time.
    Records the outcome on the destination (``last_checked_at``/``last_check_error``).
    """
    started = time.monotonic()
    payload = f"strongbox connection test {uuid.uuid4()}\n".encode()
    key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}.txt"
    step = "connect"
    saved = None
    error = ""
    backend = None
    try:
        require_destination_paths(destination)  # a link swapped in since it was saved
        backend = backend_for(destination)
        storage = backend.probe_storage()
        step = "object lock"
        if problem := backend.object_lock_problem(storage):
            raise ObjectLockUnavailable(problem)
        step = "write"
        saved = storage.save(key, ContentFile(payload))
        step = "read"
        with storage.open(saved, "rb") as probe:
            read_back = probe.read()
        if read_back != payload:
            step = "compare"
            raise OSError("the object read back differs from the one written")
        step = "delete"
        storage.delete(saved)
        saved = None
    except Exception as exc:  # noqa: BLE001 - any backend failure is the test's answer
        if isinstance(exc, ObjectLockUnavailable):
            error = f"{step} failed: {exc}"
        elif step == "compare" or not _unreachable(backend, exc):
            error = f"{step} failed: {type(exc).__name__}: {exc}"
        else:
            # Before anything was written, not answering is a failure to connect.
            step = "connect" if saved is None else step
            error = f"{step} failed: {NOT_REACHABLE}"
            # What happened, for the operator's log only (the tenant's answer stays uniform).
            explained = backend.explain(exc) if backend is not None else exc
            logger.info("connection test of %s: %s failed: %s", destination.pk, step, explained)
            minimum = UNREACHABLE_ANSWER_SECONDS
            if minimum is None:
                minimum = backend.probe_wait_seconds() if backend is not None else 0.0
            time.sleep(max(0.0, started + minimum - time.monotonic()))
        if saved is not None and step != "delete":
            try:
                storage.delete(saved)
            except Exception:  # noqa: BLE001, S110 - best effort; the real error is reported
                pass
    duration_ms = int((time.monotonic() - started) * 1000)
    Destination.objects.filter(pk=destination.pk).update(
        last_checked_at=timezone.now(), last_check_error=error
    )
    destination.refresh_from_db(fields=["last_checked_at", "last_check_error"])
    if error:
        return DestinationTestResult(False, error, step, duration_ms)
    where = backend.describe()
    return DestinationTestResult(
        True, f"Wrote, read back and deleted a probe object in {where}.", None, duration_ms
    )
