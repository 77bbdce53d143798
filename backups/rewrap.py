"""Re-wrapping age backups for the organisation's current recipients.

An age artifact's 16-byte file key is wrapped once per recipient in its header; the payload
is encrypted under a key derived from it. So giving an existing backup to a new recipient
(an escrow key added, a key retired) rewrites the header with an identity that opens it and
copies the payload unchanged: no plaintext, no re-encryption, no re-compression.

Every stored copy gets the same new header, so the copies stay byte-identical and the
backup keeps one checksum. A copy written through its destination's ordinary sink replaces
the artifact only when complete (local: a rename; S3: the multipart upload's completion).
If one copy fails, the copies already rewritten get their old header back (the exact old
bytes: the header was kept), so the backup is as it was; only then is the row updated
(checksum, size, key id) in one write.

AES-256-GCM backups cannot be re-wrapped: their key is symmetric and derived per
organisation (``backups.keys``), and there is no header to rewrite.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import BinaryIO

from django.db import transaction
from django.utils import timezone

from backups.age_format import AgeError, header_for, open_file_key, parse_recipient
from backups.keys import KeyUnavailable, age_identities, age_key_id, age_recipients_for
from backups.models import Backup, BackupCopy, BackupStatus, CopyStatus, Encryption
from destinations.backends import DestinationBackends
from destinations.storage import open_artifact_stream, open_sink


class CannotRewrap(Exception):
    """Why this backup cannot be re-wrapped (nothing was changed)."""


@dataclass(frozen=True)
class Rewrapped:
    backup: Backup
    changed: bool  # False: it already was for exactly these recipients
    key_id: str


def rewrappable_backups(organisation=None):
    queryset = Backup.objects.filter(status=BackupStatus.COMPLETED).select_related("organisation")
    if organisation is not None:
        queryset = queryset.filter(organisation=organisation)
    return queryset.order_by("created_at", "pk")


def age_backup_rewrap(*, backup: Backup, dry_run: bool = False) -> Rewrapped:
    """Rewrite every stored copy's header for the organisation's recipients now; raises
    CannotRewrap saying why not (an AES or unencrypted backup, no recipients, no identity,
    an identity that does not open it, an unreadable copy)."""
    if backup.encryption != Encryption.AGE:
        what = "unencrypted" if backup.encryption == Encryption.NONE else backup.encryption
        raise CannotRewrap(
            f"it is {what}: only age backups have a header to re-wrap (AES-256-GCM keys are "
            "symmetric and stay as they are)"
        )
    recipients = age_recipients_for(backup.organisation)
    if not recipients:
        raise CannotRewrap("the organisation has no age recipients now")
    key_id = age_key_id(recipients)
    if key_id == backup.key_id:
        return Rewrapped(backup, changed=False, key_id=key_id)
    try:
        identities = age_identities(backup.organisation, backup.key_id)
    except KeyUnavailable as exc:
        raise CannotRewrap(exc.message) from exc
    copies = list(
        backup.copies.select_related("destination")
        .filter(status=CopyStatus.STORED)
        .order_by("created_at", "pk")
    )
    if not copies:
        raise CannotRewrap("no stored copy is left")
    _refuse_locked(backup)
    backends = DestinationBackends()
    old_header, file_key = _open_header(backends, copies[0], identities)
    if dry_run:
        return Rewrapped(backup, changed=True, key_id=key_id)
    new_header = header_for(file_key, [parse_recipient(r) for r in recipients])
    done: list[BackupCopy] = []
    digests: set[tuple[str, int]] = set()
    try:
        for copy in copies:
            digests.add(_rewrite(backends, copy, identities, file_key, new_header))
            done.append(copy)
    except Exception as exc:
        failed = copy.destination.name
        stuck = []
        for copy in done:  # the old header back: the old bytes exactly
            try:
                _rewrite(backends, copy, identities, file_key, old_header)
            except Exception:  # noqa: BLE001 - named below; a run again re-wraps it
                stuck.append(copy.destination.name)
        left = (
            f"the copies in {', '.join(stuck)} kept the new header, so their checksum no "
            "longer matches the backup's: run the command again to finish"
            if stuck
            else "every copy was left as it was"
        )
        raise CannotRewrap(f"the copy in {failed} could not be re-wrapped ({exc}); {left}") from exc
    if len(digests) != 1:  # unreachable unless copies differed in their payload already
        raise CannotRewrap(f"the copies differ after re-wrapping: {sorted(digests)}")
    ((digest, size),) = digests
    with transaction.atomic():
        Backup.objects.filter(pk=backup.pk).update(checksum_sha256=digest, size=size, key_id=key_id)
        BackupCopy.objects.filter(pk__in=[c.pk for c in copies]).update(size=size)
    backup.checksum_sha256, backup.size, backup.key_id = digest, size, key_id
    return Rewrapped(backup, changed=True, key_id=key_id)


def _refuse_locked(backup: Backup) -> None:
    locked = backup.copies.locked(timezone.now()).select_related("destination").first()
    if locked is not None:
        # The store keeps the locked version whatever is written over it.
        raise CannotRewrap(
            f"the copy in {locked.destination.name} is locked until "
            f"{locked.locked_until.isoformat(timespec='seconds')} (object lock): its stored "
            "bytes cannot be replaced before then"
        )


def _reader(backends: DestinationBackends, copy: BackupCopy) -> BinaryIO:
    return io.BufferedReader(open_artifact_stream(backends[copy.destination], copy.key))  # type: ignore[arg-type]


def _open_header(backends, copy: BackupCopy, identities) -> tuple[bytes, bytes]:
    try:
        with _reader(backends, copy) as stream:
            file_key, header = open_file_key(stream, identities)
    except AgeError as exc:
        raise CannotRewrap(
            f"its header does not open with the organisation's identities ({exc})"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - an unreachable destination, a missing file
        raise CannotRewrap(f"the copy in {copy.destination.name} cannot be read ({exc})") from exc
    return header, file_key


def _rewrite(backends, copy: BackupCopy, identities, file_key: bytes, header: bytes):
    """The copy again with ``header`` in front of its own payload; (sha256, size)."""
    digest = hashlib.sha256(header)
    size = len(header)
    sink = open_sink(
        backends[copy.destination], copy.key, name=str(copy.destination_id), replace=True
    )
    try:
        with _reader(backends, copy) as stream:
            if open_file_key(stream, identities)[0] != file_key:
                raise AgeError("this copy's header holds another file key")
            sink.write(header)
            while data := stream.read(1 << 20):
                sink.write(data)
                digest.update(data)
                size += len(data)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    backends[copy.destination].seal(copy.key)  # a read-only local copy stays read-only
    return digest.hexdigest(), size
