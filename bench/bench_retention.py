"""Benchmark: a retention plan for 100,000 hourly backups of one environment (~11 years).

Run: .venv/bin/python bench/bench_retention.py  (target: well under 1 s per plan)
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schedules.retention import BackupInfo, RetentionPolicy, plan_retention  # noqa: E402

COUNT = 100_000
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def make_backups() -> list[BackupInfo]:
    start = NOW - timedelta(hours=COUNT)
    backups = []
    for i in range(COUNT):
        created = start + timedelta(hours=i)
        # Mostly database backups, a full one every night, the odd failure and manual one.
        kind = "full" if i % 24 == 2 else "database"
        status = "failed" if i % 97 == 0 else "completed"
        backups.append(
            BackupInfo(
                id=f"b{i:06d}",
                created_at=created,
                kind=kind,
                status=status,
                size=50_000_000,
                manual=i % 500 == 0,
            )
        )
    return backups


def main() -> None:
    backups = make_backups()
    print(f"{len(backups)} backups from {backups[0].created_at:%Y-%m-%d} to {NOW:%Y-%m-%d}")
    policy = RetentionPolicy(
        retain_hourly=24,
        retain_daily=7,
        retain_weekly=4,
        retain_monthly=12,
        retain_full_hourly=0,
        retain_full_daily=14,
        retain_monthly_days=400,
    )
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        plan = plan_retention(backups, policy, "Europe/London", NOW)
        timings.append(time.perf_counter() - started)
    print(f"plan_retention: best {min(timings):.3f} s, worst {max(timings):.3f} s (5 runs)")
    print(
        f"kept {plan.kept_count}, deleted {plan.deleted_count}, "
        f"freed {plan.bytes_freed / 1e9:.1f} GB"
    )
    assert plan.kept_count + plan.deleted_count == COUNT
    assert min(timings) < 1.0, "retention planning is slower than the 1 s target"


if __name__ == "__main__":
    main()
