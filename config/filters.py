"""Query filters every app's FilterSets share."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django.core.exceptions import ValidationError

OUT_OF_RANGE = "This date-time is out of range in UTC."


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601, also when an unencoded ``+`` of the offset arrived as a space; compared in
    UTC (PostgreSQL takes offsets up to 15:59 only, ISO 8601 and Python up to 23:59)."""

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip().replace(" ", "+")
        value = super().to_python(value)
        try:
            return value.astimezone(UTC) if value is not None else None
        except OverflowError:  # year 1 east of UTC, year 9999 west of it
            raise ValidationError(OUT_OF_RANGE, code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField
