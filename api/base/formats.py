"""Timestamp spellings of the API dialects (each document writes them its own way)."""

from __future__ import annotations

from datetime import UTC, datetime


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def iso_millis_z(value: datetime | None) -> str | None:
    """``2025-09-19T21:50:27.317Z``"""
    if value is None:
        return None
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_seconds_z(value: datetime | None) -> str | None:
    """``2024-01-15T10:30:00Z``"""
    return None if value is None else _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_seconds_offset(value: datetime | None) -> str | None:
    """``2025-09-19T21:51:09+00:00``"""
    return None if value is None else _utc(value).replace(microsecond=0).isoformat()
