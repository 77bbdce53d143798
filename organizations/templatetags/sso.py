"""``{% sso_login_options as sso %}``: what the sign-in page offers (organizations/sso.py)."""

from django import template
from django.conf import settings

from organizations import sso

register = template.Library()


@register.simple_tag
def sso_login_options() -> dict:
    return {
        "enabled": sso.sso_enabled(),
        "label": settings.STRONGBOX_OIDC_BUTTON_LABEL,
        "local_login": sso.local_login_enabled(),
    }
