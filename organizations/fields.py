"""Model fields whose values are encrypted at rest (Fernet), so a database dump alone never
reveals a password or an access key.

The keys, newest first (``field_cipher``, a ``MultiFernet``: it encrypts with the first and
decrypts with any):

1. each STRONGBOX_MASTER_KEY (``config/keyring.py``);
2. the local secrets key (STRONGBOX_SECRETS_KEY_FILE, ``var/secrets.key``): generated on
   first use when no master key is set, so the embedded profile needs no configuration;
   once a master key is set it only decrypts, until ``manage.py rotate_keys`` re-encrypts;
3. SECRET_KEY, for reading only: values written before master keys were required were
   encrypted under it. Nothing is ever encrypted with it, so rotating SECRET_KEY (which
   ends sessions and JWTs, nothing more) cannot make a stored secret unreadable once
   ``rotate_keys`` has run.

A value is decrypted when its attribute is first read, not when its row is loaded: a row
read for its other columns (a backup request naming its database and destinations) never
decrypts its secret, and a secret no key can read fails only what needs it (the worker
that connects), not everything that loads the row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from config.keyring import configured_fingerprints, master_keys

_PREFIX = "enc1:"


@lru_cache(maxsize=16)
def _fernet(secret: str) -> Fernet:
    # The derivation of the first version: values stored since then decrypt unchanged.
    digest = hashlib.sha256(b"strongbox-field-encryption:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@lru_cache(maxsize=4)
def _read_local_key(path: str) -> str:
    return Path(path).read_text().strip()


def local_secrets_key(*, create: bool) -> str | None:
    """The generated local key, made (once, race-free) when ``create`` and it is missing."""
    path = Path(settings.STRONGBOX_SECRETS_KEY_FILE)
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        candidate.write_text(secrets.token_urlsafe(32) + "\n")
        candidate.chmod(0o600)
        try:
            os.link(candidate, path)  # fails if another process made it first: use theirs
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return _read_local_key(str(path))


def _current_fernets() -> list[Fernet]:
    """The keys that may encrypt, newest first, then the local key while it can still read."""
    keys = [_fernet(key.secret) for key in master_keys()]
    local = local_secrets_key(create=not keys)
    if local:
        keys.append(_fernet(local))
    return keys


def newest_field_key() -> Fernet:
    return _current_fernets()[0]


def field_cipher() -> MultiFernet:
    return MultiFernet([*_current_fernets(), _fernet(settings.SECRET_KEY)])


def encrypt_text(value: str) -> str:
    return _PREFIX + field_cipher().encrypt(value.encode()).decode()


class SecretUnreadable(ImproperlyConfigured):
    """A stored secret decrypts under none of the configured keys."""


def decrypt_text(value: str) -> str:
    if not is_encrypted(value):
        return value
    try:
        return field_cipher().decrypt(token_of(value)).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with any configured key (master keys: "
            f"{configured_fingerprints()}): was a key removed from STRONGBOX_MASTER_KEY "
            "before `manage.py rotate_keys` re-encrypted it?"
        ) from exc


def is_encrypted(value: str) -> bool:
    return value.startswith(_PREFIX)


def token_of(value: str) -> bytes:
    return value[len(_PREFIX) :].encode()


def value_of(token: bytes) -> str:
    return _PREFIX + token.decode()


class Sealed(str):
    """A stored value as read from the database, still encrypted (``_DecryptOnRead``)."""


class _DecryptOnRead(DeferredAttribute):
    """The attribute of an encrypted field: a loaded row holds the stored value ``Sealed``;
    the first read decrypts it and keeps the plain value on the instance."""

    def __get__(self, instance, cls=None):
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            value = instance.__dict__[self.field.attname] = self.field.unseal(value)
        return value

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):
    """A text value stored encrypted; reads give the plain text back."""

    descriptor_class = _DecryptOnRead

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return Sealed(value)

    def unseal(self, value: Sealed) -> str:
        return decrypt_text(value)

    def get_prep_value(self, value):
        if isinstance(value, Sealed):
            return str(value)  # never decrypted: stored as it was read
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_text(value)


class EncryptedJSONField(models.TextField):
    """A JSON object stored encrypted (for a destination's secret parameters)."""

    descriptor_class = _DecryptOnRead

    def from_db_value(self, value, expression, connection):
        if not value:
            return {}
        return Sealed(value)

    def unseal(self, value: Sealed) -> dict:
        return json.loads(decrypt_text(value))

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        if not value:
            return {}
        return json.loads(decrypt_text(value))

    def get_prep_value(self, value):
        if isinstance(value, Sealed):
            return str(value)  # never decrypted: stored as it was read
        if not value:
            return ""
        return encrypt_text(json.dumps(value, sort_keys=True))
