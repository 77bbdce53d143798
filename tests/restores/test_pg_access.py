"""The pure parts of restoring PostgreSQL access: how a list setting is given back."""

import pytest

from restores.pg_access import split_setting_list


@pytest.mark.parametrize(
    ("stored", "items"),
    [
        ('app, "B c", public', ["app", "B c", "public"]),
        ('"$user", public', ["$user", "public"]),
        ('"x""y",z', ['x"y', "z"]),
        ('""', [""]),
    ],
)
def test_list_settings_are_split_as_postgresql_stored_them(stored, items):
    assert split_setting_list(stored) == items
