"""The master keys: ``STRONGBOX_MASTER_KEY`` holds one or several, newest first.

The newest key encrypts everything written from now on (backup artifacts through the
per-organisation keys of ``backups/keys.py``, stored secrets through
``organizations/fields.py``); the older ones are kept only so that what was written under
them can still be read. Keys are separated by commas or newlines (``…_FILE`` form).

Each key is named by a fingerprint, never stored: an HMAC of a fixed label under the key,
12 hex digits. An artifact records the fingerprint of the master key it was encrypted
under, so a reader picks the right key after a rotation, and when that key is gone the
error names exactly which one to configure again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

_FINGERPRINT_LABEL = b"strongbox-master-key-id-v1"
FINGERPRINT_LENGTH = 12


@dataclass(frozen=True)
class MasterKey:
    secret: str
    fingerprint: str

    def __repr__(self) -> str:  # the secret must not end up in a log or a traceback
        return f"MasterKey({self.fingerprint})"


def key_fingerprint(secret: bytes) -> str:
    return hmac.new(secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:FINGERPRINT_LENGTH]


@lru_cache(maxsize=8)
def parse_master_keys(raw: str) -> tuple[MasterKey, ...]:
    """The keys of a ``STRONGBOX_MASTER_KEY`` value, newest first, duplicates dropped."""
    keys: list[MasterKey] = []
    for part in re.split(r"[,\n]", raw or ""):
        secret = part.strip()
        if secret and secret not in (key.secret for key in keys):
            keys.append(MasterKey(secret=secret, fingerprint=key_fingerprint(secret.encode())))
    return tuple(keys)


def master_keys() -> tuple[MasterKey, ...]:
    """The configured master keys, newest first (empty: none configured)."""
    return parse_master_keys(settings.STRONGBOX_MASTER_KEY)


def master_key(fingerprint: str) -> MasterKey | None:
    return next((key for key in master_keys() if key.fingerprint == fingerprint), None)


def configured_fingerprints() -> str:
    """For error messages: which master keys this process has."""
    fingerprints = [key.fingerprint for key in master_keys()]
    return ", ".join(fingerprints) if fingerprints else "none"
