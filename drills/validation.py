"""The one check of a drill policy's values, for the service (the API) and the admin."""

from __future__ import annotations

import re

from schedules import timing

# A database name every engine takes unquoted, short enough that prefix + id fits
# PostgreSQL's 63 bytes and MariaDB's 64 characters with room to spare.
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,29}$")


def policy_problems(
    *,
    cron: str = "",
    frequency: str = "",
    timezone: str = "UTC",
    name_prefix: str = "",
    target_port: int | None = None,
) -> dict[str, str]:
    """What is wrong with these values, by field (the domain's field names); empty: fine."""
    problems: dict[str, str] = {}
    if cron and frequency:
        problems["cron"] = "Give a cron expression or a frequency, not both."
    elif cron:
        try:
            timing.validate_cron(cron, field="cron", max_length=timing.CRON_MAX_LENGTH)
        except timing.ScheduleError as exc:
            problems["cron"] = exc.message
    elif frequency:
        try:
            timing.frequency_to_cron(frequency, field="frequency")
        except timing.ScheduleError as exc:
            problems["frequency"] = exc.message
    try:
        timing.validate_timezone(timezone)
    except timing.ScheduleError as exc:
        problems["timezone"] = exc.message
    if not PREFIX_PATTERN.match(name_prefix or ""):
        problems["name_prefix"] = (
            "A name prefix is 1 to 30 lower-case letters, digits and underscores, starting "
            "with a letter (e.g. strongbox_drill_)."
        )
    if target_port is not None and not 1 <= target_port <= 65535:
        problems["target_port"] = "A port is between 1 and 65535."
    return problems
