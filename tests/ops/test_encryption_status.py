"""Unencrypted backups are allowed, never silent: /health/ready and every signed-in page
say so."""

import base64
import os

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

BANNER = 'data-testid="unencrypted-banner"'


def page(client, name="dashboard") -> str:
    response = client.get(reverse(name))
    assert response.status_code == 200
    return response.content.decode()


def test_readiness_says_backups_are_encrypted_and_under_how_many_master_keys(client, settings):
    settings.STRONGBOX_MASTER_KEY = "new-key,old-key"

    body = client.get("/health/ready").json()

    assert body["encryption"] == {"backups": "encrypted", "masterKeys": 2}


def test_readiness_says_when_backups_are_stored_unencrypted(client, settings):
    settings.STRONGBOX_MASTER_KEY = ""

    response = client.get("/health/ready")

    assert response.status_code == 200  # allowed, so not a reason to be unready
    assert response.json()["encryption"] == {"backups": "unencrypted", "masterKeys": 0}


def test_every_signed_in_page_shows_a_banner_when_backups_are_unencrypted(
    client, settings, owner, viewer
):
    settings.STRONGBOX_MASTER_KEY = ""
    for user in (owner, viewer):
        client.force_login(user)
        html = page(client)
        assert BANNER in html
        assert "Backups are stored unencrypted." in html


def test_no_banner_when_backups_are_encrypted_or_nobody_is_signed_in(client, settings, owner):
    settings.STRONGBOX_MASTER_KEY = ""
    assert BANNER not in page(client, "login")

    settings.STRONGBOX_MASTER_KEY = "a-master-key"
    client.force_login(owner)
    assert BANNER not in page(client)


def test_an_organisation_with_its_own_key_file_key_sees_no_banner_while_another_does(
    client, settings, tmp_path, owner, outsider
):
    settings.STRONGBOX_MASTER_KEY = ""
    key_file = tmp_path / "keys"
    key_file.write_text(f"quant-gov={base64.b64encode(os.urandom(32)).decode()}\n")
    settings.STRONGBOX_KEY_FILE = str(key_file)

    client.force_login(owner)
    assert BANNER not in page(client)
    client.force_login(outsider)
    assert BANNER in page(client)
