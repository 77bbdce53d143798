"""Test profile: in-memory app database unless DATABASE_URL is set, fast hashing."""

from .local import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STRONGBOX_MASTER_KEY = "test-master-key"
