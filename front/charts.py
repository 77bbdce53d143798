"""Charts of the environment and database pages: server-rendered SVG geometry, pure (no
queries). One series each: the database page draws its own database's backups only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import date_format


@dataclass
class Chart:
    width: int
    height: int
    points: list[dict]
    polyline: str
    y_ticks: list[dict]
    x_labels: list[dict]
    summary: str


def human_bytes(value: float | None) -> str:
    return "—" if value is None else filesizeformat(value).replace("\xa0", " ")


def _when(value: datetime, fmt: str) -> str:
    return date_format(timezone.localtime(value), fmt)


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def size_chart(rows: list[tuple[datetime, int, str]], width=640, height=180) -> Chart | None:
    """Server-rendered SVG geometry of backup size over time (oldest left)."""
    return line_chart(rows, human_bytes, noun="completed backup", width=width, height=height)


def duration_chart(rows: list[tuple[datetime, float, str]], width=640, height=180) -> Chart | None:
    """How long each completed backup took, oldest left."""
    return line_chart(rows, human_duration, noun="completed backup", width=width, height=height)


def line_chart(
    rows: list[tuple[datetime, float, str]],
    fmt: Callable[[float | None], str],
    *,
    noun: str,
    width=640,
    height=180,
) -> Chart | None:
    """One series of ``(when, value, name)`` rows, oldest first, as SVG geometry."""
    if not rows:
        return None
    left, right, top, bottom = 64, 12, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    first, last = rows[0][0], rows[-1][0]
    span = (last - first).total_seconds() or 1.0
    peak = max(size for _, size, _ in rows) or 1
    points = []
    for created, size, name in rows:
        x = left + (
            plot_w * (created - first).total_seconds() / span if len(rows) > 1 else plot_w / 2
        )
        y = top + plot_h * (1 - size / peak)
        points.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "label": f"{name}: {fmt(size)}, {_when(created, 'j M Y H:i')}",
            }
        )
    y_ticks = [
        {"y": round(top + plot_h * (1 - fraction), 1), "label": fmt(peak * fraction)}
        for fraction in (0, 0.5, 1)
    ]
    x_labels = [
        {"x": left, "label": date_format(timezone.localtime(first), "j M"), "anchor": "start"}
    ]
    if len(rows) > 1:
        x_labels.append(
            {
                "x": left + plot_w,
                "label": date_format(timezone.localtime(last), "j M"),
                "anchor": "end",
            }
        )
    sizes = [size for _, size, _ in rows]
    summary = (
        f"{len(rows)} {noun}{'s' if len(rows) != 1 else ''} "
        f"from {_when(first, 'j M Y')} to {_when(last, 'j M Y')}; "
        f"smallest {fmt(min(sizes))}, largest {fmt(max(sizes))}, "
        f"latest {fmt(sizes[-1])}."
    )
    return Chart(
        width=width,
        height=height,
        points=points,
        polyline=" ".join(f"{p['x']},{p['y']}" for p in points),
        y_ticks=y_ticks,
        x_labels=x_labels,
        summary=summary,
    )
