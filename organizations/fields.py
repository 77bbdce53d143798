"""Model fields whose values are encrypted at rest.

The key is derived from STRONGBOX_MASTER_KEY (falling back to SECRET_KEY) so a
database dump alone never reveals a password or an access key.
"""

import base64
import hashlib
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

_PREFIX = "enc1:"


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(b"strongbox-field-encryption:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def field_cipher() -> Fernet:
    return _fernet(settings.STRONGBOX_MASTER_KEY or settings.SECRET_KEY)


def encrypt_text(value: str) -> str:
    return _PREFIX + field_cipher().encrypt(value.encode()).decode()


def decrypt_text(value: str) -> str:
    if not value.startswith(_PREFIX):
        return value
    try:
        return field_cipher().decrypt(value[len(_PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "An encrypted field cannot be decrypted: STRONGBOX_MASTER_KEY changed?"
        ) from exc


class EncryptedTextField(models.TextField):
    """A text value stored encrypted; reads give the plain text back."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt_text(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_text(value)


class EncryptedJSONField(models.TextField):
    """A JSON object stored encrypted (for a destination's secret parameters)."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return {}
        return json.loads(decrypt_text(value))

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        if not value:
            return {}
        return json.loads(decrypt_text(value))

    def get_prep_value(self, value):
        if not value:
            return ""
        return encrypt_text(json.dumps(value, sort_keys=True))
