"""System checks of the backup settings (``manage.py check``, and every process at start)."""

from __future__ import annotations

from django.core.checks import Error

from backups.keys import KeyUnavailable, configured_age_recipients, identity_file_identities


def check_age_settings(app_configs=None, **kwargs) -> list[Error]:
    """STRONGBOX_AGE_RECIPIENTS and STRONGBOX_AGE_IDENTITY_FILE hold well-formed age keys:
    found at start rather than by the first backup or restore."""
    errors = []
    for check, error_id in (
        (configured_age_recipients, "E130"),
        (identity_file_identities, "E131"),
    ):
        try:
            check()
        except KeyUnavailable as exc:
            errors.append(Error(exc.message, id=f"strongbox.{error_id}"))
    return errors
