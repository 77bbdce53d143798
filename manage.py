#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    if sys.argv[1:2] == ["archive_wal"] and "--async" in sys.argv:
        # Asynchronous archiving: the resident pusher stores the file, this only waits for
        # its answer (pitr/wal_async.py); run with python -S, no site-packages needed.
        from pitr.wal_async import main as archive_async  # noqa: PLC0415 - fast path, no Django

        status = archive_async(sys.argv[2:])
        if status is not None:
            sys.exit(status)
    elif sys.argv[1:2] == ["archive_wal"]:
        # PostgreSQL runs this once per WAL file: answer for files already archived ahead
        # without starting Django (pitr/wal_spool.py).
        from pitr.wal_spool import archived_ahead  # noqa: PLC0415 - fast path, no Django

        if archived_ahead(sys.argv[2:]):
            return
    elif sys.argv[1:2] == ["fetch_wal"]:
        from pitr.wal_spool import fetched_ahead  # noqa: PLC0415 - fast path, no Django

        if fetched_ahead(sys.argv[2:]):
            return
    if sys.flags.no_site:
        # Started with -S for the fast path, which did not answer: Django needs site-packages.
        os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606 - same argv, no shell
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.core.management import execute_from_command_line  # noqa: PLC0415 - after the fast path

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
