"""``manage.py wal_pusher --database ID --pg-wal DIR``: the resident pusher of asynchronous
WAL archiving (``pitr/pusher.py``). The async archive_command starts it on demand, with the
spool's lock already taken and handed over; started by hand it takes the lock itself and
exits at once when another pusher of that database holds it."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from organizations.models import Database
from pitr import wal_async
from pitr.pusher import Pusher


class Command(BaseCommand):
    help = "Archive the ready WAL files of a database in the background (async archive_command)."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--database", required=True, help="Database id")
        parser.add_argument("--pg-wal", required=True, help="The server's pg_wal directory")

    def handle(self, *args, database, pg_wal, **options):
        db = (
            Database.objects.select_related("environment__project__organisation")
            .filter(pk=database)
            .first()
        )
        if db is None:
            raise CommandError(f"wal_pusher: no database {database}.")
        spool = wal_async.database_spool(str(db.pk))
        os.makedirs(spool, exist_ok=True)
        handed = os.environ.pop(wal_async.PUSHER_LOCK_FD_ENV, "")
        lock = int(handed) if handed.isdigit() else wal_async.take_lock(spool)
        if lock is None:
            self.stderr.write(f"wal_pusher: a pusher of {db.pk} is already running.")
            return
        with open(os.path.join(spool, "pusher.pid"), "w", encoding="ascii") as pid:
            pid.write(f"{os.getpid()}\n")
        Pusher(
            database=db,
            pg_wal=Path(pg_wal).resolve(),
            processes=settings.STRONGBOX_WAL_ASYNC_PROCESSES,
            queue_max=settings.STRONGBOX_WAL_ASYNC_QUEUE_MAX,
            idle_seconds=settings.STRONGBOX_WAL_ASYNC_IDLE_SECONDS,
        ).run()
        os.close(lock)
