"""Per-organisation backup encryption keys. Never stored in the database.

A key comes from STRONGBOX_KEY_FILE (lines ``org-slug-or-id=<base64 32-byte key>``) or is
derived with HKDF from STRONGBOX_MASTER_KEY and the organisation id. The key id written
into each artifact's envelope says which, so a reader finds the key again.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from config.errors import ApplicationError

KEY_SIZE = 32


class KeyUnavailable(ApplicationError):
    status_code = 500
    code = "key_unavailable"


def _key_file_entries() -> dict[str, bytes]:
    path = settings.STRONGBOX_KEY_FILE
    if not path:
        return {}
    entries = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        key = base64.b64decode(value.strip())
        if len(key) != KEY_SIZE:
            raise KeyUnavailable(f"The key for {name.strip()!r} in the key file is not 32 bytes.")
        entries[name.strip()] = key
    return entries


def _derive(organisation_id: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_SIZE,
        salt=b"strongbox-backup-key-v1",
        info=organisation_id.encode(),
    ).derive(settings.STRONGBOX_MASTER_KEY.encode())


def organisation_key(organisation) -> tuple[str, bytes] | None:
    """(key id, key) to encrypt this organisation's backups with, or None: no encryption."""
    entries = _key_file_entries()
    for name in (organisation.slug, str(organisation.id)):
        if name in entries:
            return f"file:{name}", entries[name]
    if settings.STRONGBOX_MASTER_KEY:
        return f"hkdf:{organisation.id}", _derive(str(organisation.id))
    return None


def key_for_id(key_id: str) -> bytes:
    """The key an artifact names in its envelope."""
    kind, _, name = key_id.partition(":")
    if kind == "file":
        entries = _key_file_entries()
        if name in entries:
            return entries[name]
    elif kind == "hkdf" and settings.STRONGBOX_MASTER_KEY:
        return _derive(name)
    raise KeyUnavailable(f"The encryption key {key_id!r} is not configured on this worker.")
