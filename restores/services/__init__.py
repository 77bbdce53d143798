"""Restores: request, execute, undo; test restores; reaping restores whose worker died.

A restore runs in phases, and nothing on the target changes before the last one:

1. VERIFY: read a stored copy, compare its size and SHA-256 with those the backup recorded,
   and check that the artifact's key is here (the first encrypted chunk authenticates).
2. SAFETY_BACKUP: when the target holds data, back it up first (a normal backup with
   ``trigger="safety"``, linked from the restore log; ``restore_undo`` restores it).
3. RESTORE: load every member into a scratch copy beside its target (``restores.loading``).
4. CHECK: compare per-table row counts of the scratch copies with those the backup recorded.
5. SWAP: put each scratch copy in place of its target, keeping each previous target under a
   reserved name until all are in (then they are dropped); a failure puts every swapped
   member back, so a restore of several members is all or nothing.

A point-in-time restore (``pitr_target``) recovers the database to that moment in a private
copy (RECOVER, after SAFETY_BACKUP), dumps it from there into the scratch copy (RESTORE) and
checks the counts against the copy's own.

A failure in phases 1-4 drops the scratch copies and leaves the target exactly as it was.

The package: ``requests`` (validate and create a restore, undo, claim), ``execution``
(``restore_execute`` and the restore of an artifact), ``point_in_time``, ``steps`` (the phases
and building blocks both share), ``verification`` (test restores) and ``reaping``.
"""

from restores.services.execution import restore_execute
from restores.services.reaping import restores_reap_stale, restores_sweep_leftovers
from restores.services.requests import (
    enqueue_restore,
    restore_claim,
    restore_request,
    restore_undo,
)
from restores.services.verification import (
    backup_test_restore,
    backups_due_for_test_restore,
    restores_test_due,
)

__all__ = [
    "backup_test_restore",
    "backups_due_for_test_restore",
    "enqueue_restore",
    "restore_claim",
    "restore_execute",
    "restore_request",
    "restore_undo",
    "restores_reap_stale",
    "restores_sweep_leftovers",
    "restores_test_due",
]
