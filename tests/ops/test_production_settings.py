"""The production profile and keys: it refuses to start without a master key unless
unencrypted backups are allowed, and never encrypts stored secrets with SECRET_KEY.

Each case imports the settings in a fresh interpreter with exactly the environment given,
as a deployment would start.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
K1 = "production-master-key-5c1e"


def run_production(tmp_path, code: str, **environment: str) -> subprocess.CompletedProcess:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("STRONGBOX_", "DJANGO_"))
        and name not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="production-secret-key-one",
        DATABASE_URL="postgres://strongbox@127.0.0.1:5432/strongbox",
        REDIS_URL="redis://127.0.0.1:6379/15",
        STRONGBOX_VAR_DIR=str(tmp_path / "var"),
    )
    env.update(environment)
    program = "import django\ndjango.setup()\n" + code
    return subprocess.run(  # noqa: S603 - our own interpreter, a fixed program
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_production_refuses_to_start_without_a_master_key(tmp_path):
    result = run_production(tmp_path, "print('started')")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "Set STRONGBOX_MASTER_KEY (or STRONGBOX_MASTER_KEY_FILE) in production" in result.stderr
    assert "STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS=1" in result.stderr


def test_production_starts_without_a_master_key_when_unencrypted_backups_are_allowed(tmp_path):
    code = "from backups.keys import backups_encrypted\nprint('encrypted', backups_encrypted())"
    result = run_production(tmp_path, code, STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS="1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "encrypted False"


def test_production_starts_with_several_master_keys_from_a_file(tmp_path):
    key_file = tmp_path / "master-keys"
    key_file.write_text(f"new-master-key-a7\n{K1}\n")
    code = "from config.keyring import master_keys\nprint(len(master_keys()))"
    result = run_production(tmp_path, code, STRONGBOX_MASTER_KEY_FILE=str(key_file))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"


ENCRYPT = "from organizations.fields import encrypt_text\nprint(encrypt_text('db-password'))"
DECRYPT = "from organizations.fields import decrypt_text\nprint(decrypt_text({!r}))"


@pytest.mark.parametrize(
    "keys",
    [
        {"STRONGBOX_MASTER_KEY": K1},
        {"STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS": "1"},  # secrets: under the generated local key
    ],
    ids=["master-key", "unencrypted-backups"],
)
def test_stored_secrets_survive_a_secret_key_rotation_in_production(tmp_path, keys):
    written = run_production(tmp_path, ENCRYPT, **keys)
    assert written.returncode == 0, written.stderr
    value = written.stdout.strip()

    read = run_production(
        tmp_path, DECRYPT.format(value), DJANGO_SECRET_KEY="production-secret-key-two", **keys
    )

    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "db-password"
