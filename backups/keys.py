"""Per-organisation backup encryption keys. Never stored in the database.

A key comes from STRONGBOX_KEY_FILE (lines ``org-slug-or-id=<base64 32-byte key>``) or is
derived with HKDF from the newest STRONGBOX_MASTER_KEY and the organisation id. The key id
written into each artifact's envelope (and on its Backup or WalSegment row) says which, so
a reader finds the key again after a rotation:

- ``hkdf:<master key fingerprint>:<organisation id>``: derived from that master key;
- ``file:<name>:<key fingerprint>``: that line of the key file (several lines may name the
  same organisation, newest first: the first one encrypts, all of them decrypt).

Artifacts written before key ids named their key (``hkdf:<organisation id>`` and
``file:<name>``) are read by trying every candidate key on the first chunk, which GCM
authenticates (``envelope.EnvelopeReader``).

age (``backups.age_format``) takes precedence when an organisation has recipients, its own
(``AgeKeys``) or STRONGBOX_AGE_RECIPIENTS: the worker needs only those public keys, and the
key id is ``age:`` and their fingerprints. Reading one needs an identity: the
organisation's own (stored encrypted) or those in STRONGBOX_AGE_IDENTITY_FILE; another
organisation's identity is never tried.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db.models import Count

from backups.age_format import (
    AgeKeyError,
    Identity,
    parse_identities,
    parse_recipient,
    recipient_fingerprint,
)
from backups.models import AgeKeys, Backup, BackupStatus, Encryption, WalSegment
from config.errors import ApplicationError
from config.keyring import configured_fingerprints, key_fingerprint, master_key, master_keys

KEY_SIZE = 32


class KeyUnavailable(ApplicationError):
    status_code = 500
    code = "key_unavailable"


def _key_file_entries() -> dict[str, list[bytes]]:
    """Name -> keys, in file order (newest first)."""
    path = settings.STRONGBOX_KEY_FILE
    if not path:
        return {}
    entries: dict[str, list[bytes]] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        try:
            key = base64.b64decode(value.strip(), validate=True)
        except binascii.Error as exc:
            raise KeyUnavailable(f"The key for {name!r} in the key file is not base64.") from exc
        if len(key) != KEY_SIZE:
            raise KeyUnavailable(f"The key for {name!r} in the key file is not 32 bytes.")
        entries.setdefault(name, []).append(key)
    return entries


def _derive(master_secret: str, organisation_id: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_SIZE,
        salt=b"strongbox-backup-key-v1",
        info=organisation_id.encode(),
    ).derive(master_secret.encode())


def organisation_key(organisation) -> tuple[str, bytes] | None:
    """(key id, key) to encrypt this organisation's backups with, or None: no encryption."""
    entries = _key_file_entries()
    for name in (organisation.slug, str(organisation.id)):
        if name in entries:
            key = entries[name][0]
            return f"file:{name}:{key_fingerprint(key)}", key
    keys = master_keys()
    if keys:
        newest = keys[0]
        return f"hkdf:{newest.fingerprint}:{organisation.id}", _derive(
            newest.secret, str(organisation.id)
        )
    return None


def backups_encrypted(organisation=None) -> bool:
    """Whether new backups (of this organisation, or of every one) are encrypted."""
    if master_keys() or configured_age_recipients():  # every organisation
        return True
    if organisation is None:
        return False
    return bool(age_recipients_for(organisation)) or organisation_key(organisation) is not None


# --- age ----------------------------------------------------------------------------------

# A key id holds every recipient's fingerprint: 13 characters each within its 1000.
MAX_AGE_RECIPIENTS = 20


def parse_recipient_list(text: str) -> list[str]:
    """age1… keys separated by commas, spaces or lines (``#`` starts a comment), checked;
    AgeKeyError names the first that is not one."""
    recipients: list[str] = []
    for line in text.splitlines():
        for item in line.split("#", 1)[0].replace(",", " ").split():
            parse_recipient(item)
            if item not in recipients:
                recipients.append(item)
    return recipients


def configured_age_recipients() -> list[str]:
    """STRONGBOX_AGE_RECIPIENTS: the installation's escrow recipients."""
    try:
        return parse_recipient_list(settings.STRONGBOX_AGE_RECIPIENTS)
    except AgeKeyError as exc:
        raise KeyUnavailable(f"STRONGBOX_AGE_RECIPIENTS: {exc}") from exc


def age_recipients_for(organisation) -> list[str]:
    """The recipients new backups of this organisation are encrypted to: its own, then
    STRONGBOX_AGE_RECIPIENTS; empty when it has none (then AES-256-GCM or nothing)."""
    keys = AgeKeys.objects.filter(organisation=organisation).first()
    own = list(keys.recipients) if keys else []
    return own + [r for r in configured_age_recipients() if r not in own]


def age_key_id(recipients: list[str]) -> str:
    return "age:" + ",".join(recipient_fingerprint(r) for r in recipients)


def age_recipient_fingerprints(key_id: str) -> list[str]:
    kind, _, rest = key_id.partition(":")
    return rest.split(",") if kind == "age" and rest else []


def identity_file_identities() -> list[Identity]:
    path = settings.STRONGBOX_AGE_IDENTITY_FILE
    if not path:
        return []
    try:
        return parse_identities(Path(path).read_text())
    except OSError as exc:
        raise KeyUnavailable(f"STRONGBOX_AGE_IDENTITY_FILE {path} cannot be read: {exc}") from exc
    except AgeKeyError as exc:
        raise KeyUnavailable(f"STRONGBOX_AGE_IDENTITY_FILE {path}: {exc}") from exc


def age_identities(organisation, key_id: str = "") -> list[Identity]:
    """The identities this organisation's age artifacts are opened with: its own, then the
    identity file's. KeyUnavailable, naming the artifact's recipients, when there is none."""
    keys = AgeKeys.objects.filter(organisation=organisation).first()
    identities = parse_identities(keys.identity) if keys and keys.identity else []
    identities += identity_file_identities()
    if not identities:
        fingerprints = ", ".join(age_recipient_fingerprints(key_id)) or "unknown"
        raise KeyUnavailable(
            f"The backup is encrypted with age (recipients {fingerprints}) and no age "
            f"identity is configured for organisation {organisation.slug!r} on this worker: "
            "set STRONGBOX_AGE_IDENTITY_FILE or the organisation's identity "
            "(Settings → Encryption, PATCH /api/organizations/{id}/encryption)."
        )
    return identities


def age_identity_configured(organisation) -> bool:
    """Whether this process holds an identity for the organisation's age backups (a web
    process may lack STRONGBOX_AGE_IDENTITY_FILE that the workers have)."""
    if settings.STRONGBOX_AGE_IDENTITY_FILE:
        return True
    return AgeKeys.objects.filter(organisation=organisation).exclude(identity="").exists()


@dataclass(frozen=True)
class ArtifactEncryption:
    """How new artifacts of an organisation are encrypted."""

    encryption: str  # an Encryption value
    key_id: str = ""
    key: bytes | None = None  # AES-256-GCM
    recipients: tuple[str, ...] = ()  # age


def artifact_encryption(organisation) -> ArtifactEncryption:
    recipients = age_recipients_for(organisation)
    if recipients:
        return ArtifactEncryption(Encryption.AGE, age_key_id(recipients), None, tuple(recipients))
    key = organisation_key(organisation)
    if key is not None:
        return ArtifactEncryption(Encryption.AES_256_GCM, key[0], key[1])
    return ArtifactEncryption(Encryption.NONE)


def artifact_keys(organisation, key_id: str = "") -> dict:
    """``open_artifact``'s key arguments for an artifact of this organisation (its key id,
    if known, names the recipients in a missing-identity message)."""
    return {
        "key_for": key_for_id,
        "age_identities": lambda: age_identities(organisation, key_id),
    }


def master_fingerprint_of(key_id: str) -> str | None:
    """The master key fingerprint a key id names (None: a key file key, or the old format)."""
    kind, _, rest = key_id.partition(":")
    fingerprint, separator, _ = rest.partition(":")
    return fingerprint if kind == "hkdf" and separator else None


def key_for_id(key_id: str) -> bytes | list[bytes]:
    """The key an artifact names in its envelope; for an old-format id, every candidate."""
    kind, _, rest = key_id.partition(":")
    if kind == "hkdf":
        fingerprint, separator, organisation_id = rest.partition(":")
        if not separator:  # "hkdf:<organisation id>": any configured master key may be it
            candidates = [_derive(key.secret, fingerprint) for key in master_keys()]
            if candidates:
                return candidates
            raise KeyUnavailable(
                f"The encryption key {key_id!r} is derived from a master key, and "
                "STRONGBOX_MASTER_KEY is not set on this worker."
            )
        key = master_key(fingerprint)
        if key is not None:
            return _derive(key.secret, organisation_id)
        raise KeyUnavailable(
            f"The encryption key {key_id!r} is derived from master key {fingerprint}, which "
            f"is not in STRONGBOX_MASTER_KEY on this worker (configured: "
            f"{configured_fingerprints()}). Add that key back (after the newest) to read it."
        )
    if kind == "file":
        name, separator, fingerprint = rest.rpartition(":") if ":" in rest else (rest, "", "")
        keys = _key_file_entries().get(name, [])
        if not separator and keys:
            return keys
        for key in keys:
            if key_fingerprint(key) == fingerprint:
                return key
    raise KeyUnavailable(f"The encryption key {key_id!r} is not configured on this worker.")


@dataclass(frozen=True)
class KeyNeed:
    """Kept encrypted artifacts that need one key (``keys_needed``)."""

    key: str  # a master key fingerprint, or a key id that names no master key
    state: str  # "newest", "older", "missing", or "unnamed" (old-format hkdf ids)
    backups: int
    wal_segments: int


def keys_needed() -> list[KeyNeed]:
    """Which keys the kept encrypted artifacts (completed backups and archived WAL) need.
    Artifacts are never re-encrypted, so an older master key must stay configured while
    one of these still names it."""
    counts: dict[str, list[int]] = {}
    kept = {
        0: Backup.objects.filter(status=BackupStatus.COMPLETED, encrypted=True).exclude(
            encryption=Encryption.AGE  # recipients' keys, not master keys
        ),
        1: WalSegment.objects.filter(encrypted=True),
    }
    for slot, queryset in kept.items():
        for key_id, n in queryset.values_list("key_id").annotate(n=Count("pk")).order_by():
            fingerprint = master_fingerprint_of(key_id)
            key = fingerprint or ("hkdf:<organisation>" if key_id.startswith("hkdf:") else key_id)
            counts.setdefault(key, [0, 0])[slot] += n
    newest = master_keys()[0].fingerprint if master_keys() else None
    needs = []
    for key, (backups, wal_segments) in counts.items():
        if key == newest:
            state = "newest"
        elif master_key(key) is not None:
            state = "older"
        elif key.startswith("hkdf:"):
            state = "unnamed"
        elif key.startswith("file:"):
            state = "missing" if _file_key_missing(key) else "older"
        else:
            state = "missing"
        needs.append(KeyNeed(key, state, backups, wal_segments))
    return sorted(
        needs, key=lambda need: ("newest", "older", "unnamed", "missing").index(need.state)
    )


def _file_key_missing(key_id: str) -> bool:
    try:
        key_for_id(key_id)
    except KeyUnavailable:
        return True
    return False
