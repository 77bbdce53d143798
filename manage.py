#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["archive_wal"]:
        # PostgreSQL runs this once per WAL file: answer for files already archived ahead
        # without starting Django (pitr/wal_spool.py).
        from pitr.wal_spool import archived_ahead  # noqa: PLC0415 - fast path, no Django

        if archived_ahead(sys.argv[2:]):
            return
    elif sys.argv[1:2] == ["fetch_wal"]:
        from pitr.wal_spool import fetched_ahead  # noqa: PLC0415 - fast path, no Django

        if fetched_ahead(sys.argv[2:]):
            return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.core.management import execute_from_command_line  # noqa: PLC0415 - after the fast path

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
