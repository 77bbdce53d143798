"""The schedule editor and the retention form.

Validation of the values themselves is ``schedules.services.schedule_upsert``'s (and
``schedules.timing``'s); these forms only collect what a person types, turn it into the
service's arguments and put the service's errors back next to the right fields.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django import forms

from destinations.models import Destination
from schedules import timing
from schedules.models import RETENTION_FIELDS

RULES = ("hourly", "daily", "weekly", "monthly")
DAY_CHOICES = [(i, name[:3]) for i, name in enumerate(timing._DAY_NAMES)]


def _frequency_choices():
    return [
        ("", "Not scheduled"),
        *[(p.name, f"{p.description} ({p.cron})") for p in timing.CRON_PRESETS],
        ("custom", "Custom cron expression"),
    ]


def _timezones():
    return [(name, name) for name in sorted(timing.iana_timezone_names())]


def _int_list(value: str) -> list[int] | None:
    """``"0, 30"`` → ``[0, 30]``; blank → None. Non-numbers raise ValueError."""
    parts = [p for p in value.replace(" ", ",").split(",") if p]
    return [int(p) for p in parts] if parts else None


class RetentionFieldsMixin:
    """The sixteen ``retain_*`` counts and days as optional non-negative integers."""

    @staticmethod
    def retention_fields() -> dict[str, forms.Field]:
        fields = {}
        for name in RETENTION_FIELDS:
            words = name.removeprefix("retain_").split("_")
            if words[-1] == "days":
                label = f"{words[0].title()} within days"
            elif words[0] in ("db", "full"):
                label = f"{'Database' if words[0] == 'db' else 'Full'} {words[1]}"
            else:
                label = f"{words[0].title()} (all kinds)"
            fields[name] = forms.IntegerField(
                label=label,
                min_value=0,
                required=False,
                widget=forms.NumberInput(attrs={"inputmode": "numeric", "placeholder": "—"}),
            )
        return fields

    def retention_values(self) -> dict[str, int | None]:
        return {name: self.cleaned_data.get(name) for name in RETENTION_FIELDS}

    def retention_grid(self) -> list[dict]:
        """Rows (hourly…monthly) × columns (all kinds, database, full, days) of bound fields."""
        return [
            {
                "rule": rule,
                "all": self[f"retain_{rule}"],
                "db": self[f"retain_db_{rule}"],
                "full": self[f"retain_full_{rule}"],
                "days": self[f"retain_{rule}_days"],
            }
            for rule in RULES
        ]


class ScheduleForm(RetentionFieldsMixin, forms.Form):
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)
    paused = forms.BooleanField(
        label="Paused", required=False, help_text="Keep the settings but start no backup."
    )
    timezone = forms.ChoiceField(
        label="Timezone", help_text="Run times and retention buckets follow this timezone."
    )
    db_frequency = forms.ChoiceField(label="Database backups", required=False)
    db_cron = forms.CharField(
        label="Database cron",
        required=False,
        max_length=100,
        help_text="minute hour day-of-month month day-of-week, e.g. 30 2 * * *",
    )
    full_frequency = forms.ChoiceField(label="Full backups", required=False)
    full_cron = forms.CharField(label="Full cron", required=False, max_length=100)
    hourly_enabled = forms.BooleanField(label="Every hour", required=False)
    hourly_minute = forms.CharField(label="At minutes", required=False, help_text="e.g. 0, 30")
    daily_enabled = forms.BooleanField(label="Every day", required=False)
    daily_hour = forms.CharField(label="At hours", required=False, help_text="e.g. 2, 14")
    daily_minute = forms.CharField(label="At minutes", required=False)
    weekly_enabled = forms.BooleanField(label="Every week", required=False)
    weekly_day = forms.TypedMultipleChoiceField(
        label="On",
        choices=DAY_CHOICES,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    weekly_hour = forms.CharField(label="At hours", required=False)
    weekly_minute = forms.CharField(label="At minutes", required=False)
    destinations = forms.ModelMultipleChoiceField(
        label="Destinations",
        queryset=Destination.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Scheduled backups are stored in each one; none means the default.",
    )
    wal_enabled = forms.BooleanField(label="Archive WAL (PostgreSQL)", required=False)
    wal_retention_days = forms.IntegerField(label="Keep WAL for days", min_value=1, required=False)

    # The service's field names where this form names them otherwise.
    SERVICE_FIELDS = {"destination_ids": "destinations"}

    def __init__(self, *args, organisation, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["timezone"].choices = _timezones()
        self.fields["db_frequency"].choices = _frequency_choices()
        self.fields["full_frequency"].choices = _frequency_choices()
        self.fields["destinations"].queryset = Destination.objects.filter(organisation=organisation)
        self.fields.update(self.retention_fields())

    @classmethod
    def initial_for(cls, schedule) -> dict:
        if schedule is None:
            return {"timezone": "UTC", "enabled": True, "db_frequency": "daily"}
        initial = {
            "enabled": schedule.enabled,
            "paused": schedule.paused,
            "timezone": schedule.timezone,
            "wal_enabled": schedule.wal_enabled,
            "wal_retention_days": schedule.wal_retention_days,
            "destinations": list(schedule.destinations.all()),
            **{name: getattr(schedule, name) for name in RETENTION_FIELDS},
        }
        for kind in ("db", "full"):
            cron = getattr(schedule, f"{kind}_cron")
            frequency = getattr(schedule, f"{kind}_frequency")
            if not frequency and cron:
                preset = next((p.name for p in timing.CRON_PRESETS if p.cron == cron), "custom")
                frequency = preset
            initial[f"{kind}_frequency"] = frequency
            initial[f"{kind}_cron"] = cron if frequency == "custom" else ""
        for rule in schedule.interval_rules.all():
            initial[f"{rule.interval}_enabled"] = True
            initial[f"{rule.interval}_minute"] = ", ".join(map(str, rule.minute or []))
            if rule.hour is not None:
                initial[f"{rule.interval}_hour"] = ", ".join(map(str, rule.hour))
            if rule.day is not None:
                initial[f"{rule.interval}_day"] = list(rule.day)
        return initial

    def clean(self):
        cleaned = super().clean()
        for kind in ("db", "full"):
            self._clean_custom_cron(cleaned, kind)
        self.rules = []
        for interval in ("hourly", "daily", "weekly"):
            if cleaned.get(f"{interval}_enabled"):
                rule = self._interval_rule(cleaned, interval)
                if rule is not None:
                    self.rules.append(rule)
        if cleaned.get("wal_enabled") and not cleaned.get("wal_retention_days"):
            self.add_error("wal_retention_days", "Required when WAL archiving is on.")
        return cleaned

    def _clean_custom_cron(self, cleaned: dict, kind: str) -> None:
        """A custom frequency needs a valid cron (normalised in ``cleaned``)."""
        cron = cleaned.get(f"{kind}_cron", "")
        if cleaned.get(f"{kind}_frequency") != "custom":
            return
        if not cron:
            self.add_error(f"{kind}_cron", "Enter a cron expression, or pick a preset.")
            return
        try:
            cleaned[f"{kind}_cron"] = timing.validate_cron(cron, max_length=timing.CRON_MAX_LENGTH)
        except timing.ScheduleError as exc:
            self.add_error(f"{kind}_cron", exc.message)

    def _interval_rule(self, cleaned: dict, interval: str) -> dict | None:
        """The enabled ``interval``'s rule, or None after adding its errors to the form."""
        data: dict = {"interval": interval}
        try:
            data["minute"] = _int_list(cleaned.get(f"{interval}_minute", ""))
            if interval != "hourly":
                data["hour"] = _int_list(cleaned.get(f"{interval}_hour", ""))
        except ValueError:
            self.add_error(f"{interval}_minute", "Use whole numbers separated by commas.")
            return None
        if interval == "weekly":
            data["day"] = cleaned.get("weekly_day") or None
        try:
            timing.validate_interval_rule(data, path=interval)
        except timing.ScheduleError as exc:
            part = exc.field.rsplit(".", 1)[-1]
            name = f"{interval}_{part}"
            self.add_error(name if name in self.fields else None, exc.message)
            return None
        return {k: v for k, v in data.items() if v is not None}

    def crons(self) -> dict[str, str]:
        """The cron of each kind as the form stands (presets resolved); "" if none."""
        result = {}
        for kind in ("db", "full"):
            frequency = self.cleaned_data.get(f"{kind}_frequency", "")
            if frequency == "custom":
                result[kind] = self.cleaned_data.get(f"{kind}_cron", "")
            else:
                result[kind] = timing.FREQUENCY_PRESETS.get(frequency, "")
        return result

    def service_arguments(self) -> dict:
        """Keyword arguments of ``schedule_upsert`` (besides ``environment``)."""
        data = self.cleaned_data
        crons = self.crons()
        return {
            "db_frequency": data["db_frequency"],
            "db_cron": crons["db"],
            "full_frequency": data["full_frequency"],
            "full_cron": crons["full"],
            "timezone": data["timezone"],
            "destination_ids": [str(d.pk) for d in data["destinations"]],
            "interval_rules": self.rules,
            "enabled": data["enabled"],
            "paused": data["paused"],
            "wal_enabled": data["wal_enabled"],
            "wal_retention_days": data.get("wal_retention_days"),
            **self.retention_values(),
        }

    def add_service_errors(self, fields: dict) -> None:
        """Put the service's errors next to this form's fields (the rest above the form)."""
        for name, messages in fields.items():
            target = self.SERVICE_FIELDS.get(name, name)
            if target not in self.fields:
                target = None
            for message in messages:
                self.add_error(target, message)

    def next_runs(self, now: datetime, count: int = 5) -> dict[str, list[datetime]]:
        """The next runs of each kind in the form's timezone (rules count as database)."""
        zone = self.cleaned_data.get("timezone") or "UTC"
        crons = self.crons()
        db_crons = [crons["db"]] if crons["db"] else []
        db_crons += [
            timing.interval_rule_to_cron(timing.validate_interval_rule(rule))
            for rule in getattr(self, "rules", [])
        ]
        result = {}
        for kind, expressions in (
            ("db", db_crons),
            ("full", [crons["full"]] if crons["full"] else []),
        ):
            runs = sorted({r for c in expressions for r in timing.next_runs(c, zone, now, count)})
            result[kind] = [r.astimezone(zoneinfo.ZoneInfo(zone)) for r in runs[:count]]
        return result


class RetentionForm(RetentionFieldsMixin, forms.Form):
    """A proposed retention policy (the preview's form)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(self.retention_fields())
