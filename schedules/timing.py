"""Schedule arithmetic: cron validation, presets, next runs and seed 001 interval rules.

Pure Python (croniter and zoneinfo, no Django), so the schedule model, the API and
the worker share one implementation and it can be tested without a database.

Times are computed in the schedule's own timezone and handed back as aware UTC
datetimes. Daylight saving time is handled explicitly rather than left to croniter:

- a wall time that does not exist (the spring-forward gap) runs once, at the first
  instant after the gap (e.g. 01:30 on 2026-03-29 in Europe/London runs at 02:00 BST);
  several slots in the gap collapse into that one run;
- a wall time that occurs twice (the fall-back hour) runs once, at its first
  occurrence (01:30 BST on 2026-10-25, not again at 01:30 GMT).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

__all__ = [
    "CRON_MAX_LENGTH",
    "CRON_PRESETS",
    "FREQUENCY_PRESETS",
    "CronPreset",
    "IntervalRule",
    "ScheduleError",
    "describe",
    "describe_cron",
    "frequency_to_cron",
    "iana_timezone_names",
    "interval_rule_to_cron",
    "next_runs",
    "presets_with_next_runs",
    "previous_run",
    "validate_cron",
    "validate_interval_rule",
    "validate_interval_rules",
    "validate_timezone",
]


class ScheduleError(ValueError):
    """Invalid schedule input; ``field`` names the offending field for the API error body.

    A ValueError (not an ApplicationError) because this module must not import
    Django; the API layer maps it to ``InvalidInput(message, fields={field: [message]})``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- cron expressions ---------------------------------------------------------------

# Macros people type out of habit; stored in their five-field form so every other
# function sees one shape.
_CRON_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


# The schedule's cron columns hold this many characters; a cron someone types comes nowhere
# near it. Writers pass it as ``max_length``; crons built from interval rules may be longer.
CRON_MAX_LENGTH = 100


def validate_cron(expr: str, *, field: str = "cron", max_length: int | None = None) -> str:
    """Return the normalised five-field cron expression, or raise ScheduleError."""
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError(field, "A cron expression is required.")
    if max_length is not None and len(expr) > max_length:
        raise ScheduleError(
            field,
            f"A cron expression has at most {max_length} characters ({len(expr)} given).",
        )
    normalised = " ".join(expr.split())
    normalised = _CRON_MACROS.get(normalised.lower(), normalised)
    fields = normalised.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            field,
            f"'{expr}' has {len(fields)} fields; a cron expression has 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 2 * * *'.",
        )
    # Hashed ("H") and seconds-based extensions are croniter-specific; keep to plain cron.
    if re.search(r"\bH\b", normalised, re.IGNORECASE):
        raise ScheduleError(field, f"'{expr}' uses 'H', which is not standard cron.")
    try:
        it = croniter(normalised, datetime(2026, 1, 1))  # noqa: DTZ001 - wall-clock arithmetic
    except (ValueError, KeyError) as exc:
        raise ScheduleError(field, f"'{expr}' is not a valid cron expression ({exc}).") from exc
    try:
        it.get_next(datetime)
    except CroniterBadDateError as exc:
        # e.g. '0 0 30 2 *': valid fields, but no such date ever comes.
        raise ScheduleError(field, f"'{expr}' never runs.") from exc
    return normalised


# Files of the zoneinfo directory that ZoneInfo() loads but that are no IANA zone names:
# the host's own zone (``localtime``), the default rules file, tzdata's placeholder
# ``Factory`` ("-00"), and the ``posix/`` and ``right/`` (leap seconds) copies. Some of them
# are listed by available_timezones() when it walks the system directory.
_NOT_ZONE_NAMES = frozenset({"localtime", "posixrules", "Factory"})
_NOT_ZONE_PREFIXES = ("posix/", "right/")


@functools.cache
def iana_timezone_names() -> frozenset[str]:
    """The timezones a schedule may use: the IANA database's zone names."""
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name not in _NOT_ZONE_NAMES and not name.startswith(_NOT_ZONE_PREFIXES)
    )


def validate_timezone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """Return the IANA zone called ``name``, or raise ScheduleError.

    Only names of the IANA database are taken, so what is stored means the same on every
    machine (``localtime`` would follow the worker's host)."""
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(field, "A timezone is required, e.g. 'Europe/London' or 'UTC'.")
    if name.strip() not in iana_timezone_names():
        raise ScheduleError(
            field, f"'{name[:64]}' is not a known IANA timezone, e.g. 'Europe/London'."
        )
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            field, f"'{name[:64]}' is not a known IANA timezone, e.g. 'Europe/London'."
        ) from exc


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else validate_timezone(tz)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the spring-forward gap containing ``wall`` ends."""
    # fold=1 reads the wall time with the offset before the jump, fold=0 with the
    # offset after it (PEP 495 for gaps), so the transition lies between the two.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if low > high:
        low, high = high, low
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).utcoffset() == before:
            low = mid
        else:
            high = mid
    return high.replace(microsecond=0)


def _wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Map a cron slot (naive wall time) to the instant it runs.

    Non-decreasing in ``wall``, which lets the callers walk slots in wall order.
    """
    if not _exists(wall, zone):
        return _gap_end(wall, zone)
    # fold=0 is the first occurrence of an ambiguous wall time: the repeated hour
    # after falling back runs its slots once, not twice.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _wall_iter(cron: str, start: datetime, *, backwards: bool) -> Iterator[datetime]:
    it = croniter(cron, start)
    step = it.get_prev if backwards else it.get_next
    while True:
        yield step(datetime)


def next_runs(cron: str, tz: str | ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` runs strictly after ``after``, as aware UTC datetimes."""
    _require_aware(after, "after")
    zone = _zone(tz)
    cron = validate_cron(cron)
    local = after.astimezone(zone)
    runs: list[datetime] = []
    # Slots from the wall time of ``after``: in the repeated hour some of them map to
    # instants at or before ``after`` and are filtered out below.
    for wall in _wall_iter(cron, local.replace(tzinfo=None), backwards=False):
        if len(runs) >= count:
            break
        instant = _wall_to_utc(wall, zone)
        if instant <= after or (runs and instant <= runs[-1]):
            continue  # already past, or a gap slot that collapsed into the previous run
        runs.append(instant)
    return runs


def previous_run(cron: str, tz: str | ZoneInfo, before: datetime) -> datetime | None:
    """The latest run at or before ``before`` (aware UTC), or None if there is none.

    Used on worker start: a run that was due while the worker was down runs once,
    not once per missed slot, and to detect missed runs.
    """
    _require_aware(before, "before")
    zone = _zone(tz)
    cron = validate_cron(cron)
    local = before.astimezone(zone)
    start = local.replace(tzinfo=None, second=0, microsecond=0) + timedelta(minutes=1)
    if local.fold:
        # In the second pass of a repeated hour, first-pass slots with a later wall
        # time already ran; start the backward walk above them.
        start += local.replace(fold=0).utcoffset() - local.utcoffset()
    for tries, wall in enumerate(_wall_iter(cron, start, backwards=True)):
        instant = _wall_to_utc(wall, zone)
        if instant <= before:
            return instant
        if tries > 10_000:  # pragma: no cover - a cron always has a slot in range
            break
    return None


# --- presets --------------------------------------------------------------------------


@dataclass(frozen=True)
class CronPreset:
    """A named schedule offered in the UI and by ``GET /api/backups/cron-presets``."""

    name: str
    cron: str
    description: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "cron": self.cron, "description": self.description}


CRON_PRESETS: list[CronPreset] = [
    CronPreset("hourly", "0 * * * *", "Every hour, on the hour"),
    CronPreset("every-6-hours", "0 */6 * * *", "Every 6 hours (00:00, 06:00, 12:00, 18:00)"),
    CronPreset("every-12-hours", "0 */12 * * *", "Every 12 hours (00:00 and 12:00)"),
    CronPreset("daily", "0 2 * * *", "Every day at 02:00"),
    CronPreset("weekly", "0 3 * * 0", "Every Sunday at 03:00"),
    CronPreset("monthly", "0 4 1 * *", "On the 1st of every month at 04:00"),
]

# The schedule body's ``dbFrequency``/``fullFrequency`` names, one source with the presets.
FREQUENCY_PRESETS: dict[str, str] = {preset.name: preset.cron for preset in CRON_PRESETS}


def frequency_to_cron(name: str, *, field: str = "frequency") -> str:
    """The cron expression of a named frequency (``daily`` → ``0 2 * * *``)."""
    try:
        return FREQUENCY_PRESETS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(FREQUENCY_PRESETS)
        raise ScheduleError(field, f"'{name}' is not a frequency; use one of {allowed}.") from None


def presets_with_next_runs(
    tz: str | ZoneInfo, now: datetime, count: int = 5
) -> list[dict[str, object]]:
    """The presets with their next runs as ISO 8601 strings with the offset of ``tz``."""
    zone = _zone(tz)
    return [
        {
            **preset.as_dict(),
            "nextRuns": [
                run.astimezone(zone).isoformat() for run in next_runs(preset.cron, zone, now, count)
            ],
        }
        for preset in CRON_PRESETS
    ]


# --- seed 001 interval rules ----------------------------------------------------------

_INTERVALS = ("hourly", "daily", "weekly")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass
class IntervalRule:
    """Seed 001's schedule rule. ``day`` counts from 0 = Monday (cron counts from Sunday)."""

    interval: str
    minute: list[int]
    hour: list[int] | None = None
    day: list[int] | None = None


def _int_list(data: dict, key: str, path: str, low: int, high: int) -> list[int] | None:
    value = data.get(key)
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise ScheduleError(f"{path}.{key}", f"{key} must be an array of integers.")
    for item in value:
        # bool is an int subclass; true is not an hour.
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            raise ScheduleError(
                f"{path}.{key}",
                f"{key} values must be integers from {low} to {high}; got {item!r}.",
            )
    return sorted(set(value))


def validate_interval_rule(data: dict, *, path: str = "schedule") -> IntervalRule:
    """Validate one seed 001 rule; errors name the field, e.g. ``schedules[0].hour``.

    An absent, null or empty ``hour``/``day`` counts as not given.
    """
    if not isinstance(data, dict):
        raise ScheduleError(path, "A schedule must be an object.")
    unknown = sorted(set(data) - {"interval", "minute", "hour", "day"})
    if unknown:
        raise ScheduleError(f"{path}.{unknown[0]}", f"Unknown field '{unknown[0]}'.")
    interval = data.get("interval")
    if interval not in _INTERVALS:
        raise ScheduleError(f"{path}.interval", "interval must be one of hourly, daily, weekly.")
    minute = _int_list(data, "minute", path, 0, 59)
    if minute is None:
        raise ScheduleError(f"{path}.minute", "minute is required and must not be empty.")
    hour = _int_list(data, "hour", path, 0, 23)
    day = _int_list(data, "day", path, 0, 6)
    if interval == "hourly" and hour is not None:
        raise ScheduleError(f"{path}.hour", "hour is not available for hourly intervals.")
    if interval in ("daily", "weekly") and hour is None:
        raise ScheduleError(f"{path}.hour", f"hour is required for {interval} intervals.")
    if interval in ("hourly", "daily") and day is not None:
        raise ScheduleError(f"{path}.day", f"day is not available for {interval} intervals.")
    if interval == "weekly" and day is None:
        raise ScheduleError(f"{path}.day", "day is required for weekly intervals.")
    return IntervalRule(interval=interval, minute=minute, hour=hour, day=day)


def validate_interval_rules(items: list, *, path: str = "schedules") -> list[IntervalRule]:
    """Validate a list of rules; seed 001 allows one rule of each interval."""
    if not isinstance(items, list):
        raise ScheduleError(path, "schedules must be an array.")
    rules: list[IntervalRule] = []
    for index, item in enumerate(items):
        rule = validate_interval_rule(item, path=f"{path}[{index}]")
        if any(existing.interval == rule.interval for existing in rules):
            raise ScheduleError(
                f"{path}[{index}].interval", f"Only one {rule.interval} schedule is allowed."
            )
        rules.append(rule)
    return rules


def _join(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def interval_rule_to_cron(rule: IntervalRule) -> str:
    """The equivalent cron expression (seed day 0 = Monday becomes cron 1)."""
    minute = _join(rule.minute)
    if rule.interval == "hourly":
        return f"{minute} * * * *"
    hour = _join(rule.hour or [])
    if rule.interval == "daily":
        return f"{minute} {hour} * * *"
    return f"{minute} {hour} * * {_join(sorted((d + 1) % 7 for d in rule.day or []))}"


def describe(rule: IntervalRule) -> str:
    """Human text for a seed 001 rule, e.g. ``Every Friday at 18:30``."""
    return describe_cron(interval_rule_to_cron(rule))


# --- human descriptions ---------------------------------------------------------------

_CRON_DAY_NAMES = ("Sunday",) + _DAY_NAMES[:6]
_INT_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def _expand(field: str, low: int, high: int) -> list[int] | None:
    """Explicit values of a list/range field, or None for anything fancier."""
    if not _INT_LIST.match(field):
        return None
    values: set[int] = set()
    for part in field.split(","):
        first, _, last = part.partition("-")
        start, stop = int(first), int(last or first)
        if not low <= start <= stop <= high:
            return None
        values.update(range(start, stop + 1))
    return sorted(values)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe_cron(expr: str) -> str:
    """Human text for the common cron shapes; anything else is returned as written."""
    try:
        minute, hour, dom, month, dow = validate_cron(expr).split(" ")
    except ScheduleError:
        return expr
    if month != "*":
        return expr
    return _describe_fields(minute, hour, dom, dow) or expr


def _describe_fields(minute: str, hour: str, dom: str, dow: str) -> str | None:
    """The text for a cron of every month; None for a shape without one."""
    if (minute, hour, dom, dow) == ("*", "*", "*", "*"):
        return "Every minute"
    if (step := re.fullmatch(r"\*/(\d+)", minute)) and (hour, dom, dow) == ("*", "*", "*"):
        return f"Every {step[1]} minutes"
    minutes = _expand(minute, 0, 59)
    if minutes is None:
        return None
    at_minutes = "on the hour" if minutes == [0] else "at minute " + _and([str(m) for m in minutes])
    if (hour, dom, dow) == ("*", "*", "*"):
        return f"Every hour, {at_minutes}" if minutes == [0] else f"Every hour {at_minutes}"
    if (step := re.fullmatch(r"\*/(\d+)", hour)) and (dom, dow) == ("*", "*"):
        sep = ", " if minutes == [0] else " "
        return f"Every {step[1]} hours{sep}{at_minutes}"
    hours = _expand(hour, 0, 23)
    if hours is None:
        return None
    return _describe_days(dom, dow, _and([f"{h:02d}:{m:02d}" for h in hours for m in minutes]))


def _describe_days(dom: str, dow: str, times: str) -> str | None:
    """The text for a cron running at ``times`` on the days ``dom`` and ``dow`` name."""
    if (dom, dow) == ("*", "*"):
        return f"Every day at {times}"
    if dom == "*":
        days = _expand(dow, 0, 7)  # cron allows 7 for Sunday too
        if days is None:
            return None
        days = sorted({d % 7 for d in days})
        if days == [1, 2, 3, 4, 5]:
            return f"Every weekday at {times}"
        # Monday first, as people read a week.
        names = [_CRON_DAY_NAMES[d] for d in sorted(days, key=lambda d: (d + 6) % 7)]
        return f"Every {_and(names)} at {times}"
    if dow == "*":
        dates = _expand(dom, 1, 31)
        if dates is None:
            return None
        return f"On the {_and([_ordinal(d) for d in dates])} of every month at {times}"
    return None
