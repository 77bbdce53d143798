"""A channel's URL and secret are stored secrets like a database password: encrypted under
the newest master key and re-encrypted by ``manage.py rotate_keys``."""

import pytest
from django.core.management import call_command
from django.db.models import TextField
from django.db.models.functions import Cast

from alerts.models import NotificationChannel
from tests import factories

pytestmark = pytest.mark.django_db

K1 = "first-master-key-7f3a9c"
K2 = "second-master-key-b81d2e"


def stored(pk, column) -> str:
    rows = NotificationChannel.objects.filter(pk=pk).annotate(raw=Cast(column, TextField()))
    return rows.values_list("raw", flat=True).get()


def test_rotate_keys_re_encrypts_channel_urls_and_secrets(settings, organisation, capsys):
    settings.STRONGBOX_MASTER_KEY = K1
    hook = factories.NotificationChannelFactory(
        organisation=organisation, url="https://hooks.example.com/t0k3n", secret="whsec-7"
    )
    before = stored(hook.pk, "url")
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"

    call_command("rotate_keys")

    output = capsys.readouterr().out
    assert "alerts.NotificationChannel.url: 0 current, 1 re-encrypted" in output
    assert "alerts.NotificationChannel.secret: 0 current, 1 re-encrypted" in output
    assert stored(hook.pk, "url") != before and "t0k3n" not in stored(hook.pk, "url")
    settings.STRONGBOX_MASTER_KEY = K2  # the old key is gone: still readable
    channel = NotificationChannel.objects.get(pk=hook.pk)
    assert (channel.url, channel.secret) == ("https://hooks.example.com/t0k3n", "whsec-7")
