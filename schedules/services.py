"""Writes to schedules: create or update an environment's schedule, fully validated.

Validation lives here, not in a serializer, so the API, the UI and the admin share
it. Every error is an ``InvalidInput`` naming the field as the domain does (``db_cron``,
``timezone``, ``destination_ids``, ``interval_rules[0].hour``…); the seed 003 view spells
them its way (``dbCron``…).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from django.db import transaction

from audit.services import AuditObject, audit_record, changes
from config.errors import InvalidInput
from destinations.models import Destination
from organizations.models import Environment
from schedules import timing
from schedules.enforcement import retention_update_expiry
from schedules.models import RETENTION_FIELDS, IntervalRule, Schedule

# What ``db_frequency``/``full_frequency`` accept besides the preset names: ``custom``
# (the cron field says when) and an empty value (not scheduled).
EXTRA_FREQUENCIES = ("custom", "")

_PLAIN_FIELDS = ("enabled", "paused", "wal_enabled", "wal_retention_days", *RETENTION_FIELDS)
# What the audit log compares before and after a save (with the destinations and rules).
_AUDITED_FIELDS = (
    "db_cron",
    "db_frequency",
    "full_cron",
    "full_frequency",
    "timezone",
    *_PLAIN_FIELDS,
)


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", fields={field: [message]})


def _check_frequency(value: str, field: str) -> str:
    if value in timing.FREQUENCY_PRESETS or value in EXTRA_FREQUENCIES:
        return value
    allowed = ", ".join([*timing.FREQUENCY_PRESETS, "custom"])
    raise _invalid(field, f"'{value}' is not a frequency; use one of {allowed}.")


def _destinations(environment: Environment, ids: list) -> list[Destination]:
    owned = Destination.objects.filter(organisation=environment.project.organisation)
    found: list[Destination] = []
    unknown: list[str] = []
    for raw in ids:
        try:
            pk = uuid.UUID(str(raw))
        except ValueError:
            unknown.append(str(raw))
            continue
        destination = owned.filter(pk=pk).first()
        if destination is None:
            unknown.append(str(raw))
        elif destination not in found:
            found.append(destination)
    if unknown:
        raise InvalidInput(
            f"destination_ids: unknown destination(s): {', '.join(unknown)}.",
            fields={
                "destination_ids": [f"No destination {u!r} in this organisation." for u in unknown]
            },
        )
    return found


_CRON_MAX = timing.CRON_MAX_LENGTH


def schedule_upsert(
    *,
    environment: Environment,
    db_cron: str | None = None,
    db_frequency: str | None = None,
    full_cron: str | None = None,
    full_frequency: str | None = None,
    timezone: str | None = None,
    destination_ids: list | None = None,
    interval_rules: list[dict] | None = None,
    **fields,
) -> tuple[Schedule, bool]:
    """Create or update the environment's schedule; returns ``(schedule, created)``.

    Arguments left as None keep the current value (or the model default on create).
    An empty cron or frequency string clears it. ``fields`` are the remaining model
    fields (``enabled``, ``paused``, ``wal_*`` and the ``retain_*`` family).
    ``interval_rules`` are seed 001 rules (``{interval, minute, hour, day}``) and
    replace the current ones. When the retention policy or the timezone changes, every
    scheduled backup's ``expires_at`` is recomputed from the new policy.
    """
    unknown = set(fields) - set(_PLAIN_FIELDS)
    if unknown:
        raise TypeError(f"schedule_upsert() got unexpected fields: {', '.join(sorted(unknown))}")
    # Everything that can be checked without the row, in the order errors are reported.
    with _naming_the_field():
        crons = {
            "db_cron": timing.validate_cron(db_cron, field="db_cron", max_length=_CRON_MAX)
            if db_cron
            else db_cron,
            "full_cron": (
                timing.validate_cron(full_cron, field="full_cron", max_length=_CRON_MAX)
                if full_cron
                else full_cron
            ),
        }
        if timezone is not None:
            timezone = timing.validate_timezone(timezone).key
        rules = (
            timing.validate_interval_rules(interval_rules, path="interval_rules")
            if interval_rules is not None
            else None
        )
    frequencies = {
        "db_frequency": _frequency_or_none(db_frequency, "db_frequency"),
        "full_frequency": _frequency_or_none(full_frequency, "full_frequency"),
    }
    _fill_crons_of_presets(crons, frequencies)
    _check_counts(fields)
    destinations = (
        _destinations(environment, destination_ids) if destination_ids is not None else None
    )

    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(environment=environment).first()
        created = schedule is None
        if created:
            schedule = Schedule(environment=environment)
        before = {} if created else schedule_audited_values(schedule)
        # What the expiry estimates depend on: the policy and the timezone of its buckets.
        retention_before = (schedule.retention_policy(), schedule.timezone)
        _assign(schedule, {**crons, **frequencies, "timezone": timezone}, fields)
        _check_complete(schedule)
        schedule.save()
        if created or (schedule.retention_policy(), schedule.timezone) != retention_before:
            # In the same transaction, so ``expiredBy`` never shows the old policy's dates.
            retention_update_expiry(environment=environment)
        if destinations is not None:
            schedule.destinations.set(destinations)
        if rules is not None:
            _replace_interval_rules(schedule, rules)
        schedule_record_change(schedule=schedule, before=before, created=created)
    return schedule, created


def schedule_audited_values(schedule: Schedule) -> dict:
    """What the audit log compares before and after a change of ``schedule``."""
    values = {name: getattr(schedule, name) for name in _AUDITED_FIELDS}
    values["destination_ids"] = sorted(
        str(pk) for pk in schedule.destinations.values_list("pk", flat=True)
    )
    values["interval_rules"] = [
        {"interval": rule.interval, "minute": rule.minute, "hour": rule.hour, "day": rule.day}
        for rule in schedule.interval_rules.order_by("pk")
    ]
    return values


def schedule_record_change(*, schedule: Schedule, before: dict, created: bool) -> None:
    """``schedule.create`` with every value, or ``schedule.update`` with the changed ones
    before and after (nothing when nothing changed). ``schedule_upsert`` calls it, and the
    admin once its inlines are saved."""
    after = schedule_audited_values(schedule)
    if not created and after == before:
        return
    environment = schedule.environment
    audit_record(
        organisation=environment.project.organisation_id,
        action="schedule.create" if created else "schedule.update",
        obj=AuditObject("schedule", str(schedule.pk), str(environment)),
        details={"environment_id": str(environment.pk), **changes(before, after)},
    )


@contextlib.contextmanager
def _naming_the_field() -> Iterator[None]:
    """A ``timing.ScheduleError`` becomes the ``InvalidInput`` naming its field."""
    try:
        yield
    except timing.ScheduleError as exc:
        raise _invalid(exc.field, exc.message) from None


def _frequency_or_none(value: str | None, field: str) -> str | None:
    return _check_frequency(value, field) if value is not None else None


def _fill_crons_of_presets(crons: dict, frequencies: dict) -> None:
    """A preset frequency sent without a cron (or with an empty one) sets the cron it
    stands for, so the stored cron is always the one that runs; an empty frequency
    without a cron unschedules the kind."""
    for kind in ("db", "full"):
        frequency = frequencies[f"{kind}_frequency"]
        if frequency in timing.FREQUENCY_PRESETS and not crons[f"{kind}_cron"]:
            crons[f"{kind}_cron"] = timing.FREQUENCY_PRESETS[frequency]
        elif frequency == "" and crons[f"{kind}_cron"] is None:
            crons[f"{kind}_cron"] = ""


def _check_counts(fields: dict) -> None:
    for name in RETENTION_FIELDS + ("wal_retention_days",):
        value = fields.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise _invalid(name, "Must be a non-negative integer or null.")


def _assign(schedule: Schedule, timing_values: dict, fields: dict) -> None:
    """Set what was given: None keeps the current value (``fields`` may set a count to
    None, clearing it, but not the booleans)."""
    for name, value in timing_values.items():
        if value is not None:
            setattr(schedule, name, value)
    for name, value in fields.items():
        if name in ("enabled", "paused", "wal_enabled") and value is None:
            continue
        setattr(schedule, name, value)


def _check_complete(schedule: Schedule) -> None:
    """What only the schedule as it will be saved can tell (a field may come from the row)."""
    if schedule.wal_enabled and not schedule.wal_retention_days:
        raise _invalid("wal_retention_days", "Required (at least 1) when walEnabled is true.")
    if schedule.wal_enabled and not schedule.full_cron:
        # Base backups, where every recovery window starts, are taken at the full slots: WAL
        # without them could never be replayed (README, "Point-in-time recovery").
        raise _invalid(
            "wal_enabled",
            "walEnabled needs a full-backup schedule (fullCron or fullFrequency): base backups "
            "come from that schedule. Set one (a base backup on demand, type base, opens a "
            "window at once besides).",
        )
    for kind in ("db", "full"):
        frequency = getattr(schedule, f"{kind}_frequency")
        if frequency == "custom" and not getattr(schedule, f"{kind}_cron"):
            raise _invalid(f"{kind}_cron", f"Required when {kind}Frequency is custom.")


def _replace_interval_rules(schedule: Schedule, rules: list[timing.IntervalRule]) -> None:
    schedule.interval_rules.all().delete()
    IntervalRule.objects.bulk_create(
        IntervalRule(
            schedule=schedule,
            interval=rule.interval,
            minute=rule.minute,
            hour=rule.hour,
            day=rule.day,
        )
        for rule in rules
    )


def api_name(name: str) -> str:
    """Seed 003's camelCase name of a model field (``retain_db_daily`` → ``retainDbDaily``)."""
    head, *rest = name.split("_")
    return head + "".join("Db" if part == "db" else part.title() for part in rest)
