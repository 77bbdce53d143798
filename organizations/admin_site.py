"""The Django admin's site: Django's, except that a local account with a two-factor device
uses it only from a session verified with a one-time code (``organizations.two_factor``).

Such a user who signs in through the admin's own form (password only) is sent to
``/account/two-factor/`` to enter a code, then back to the admin. Installed as the default
site by ``organizations.apps.StrongboxAdminConfig``, so ``admin.site`` is this everywhere.
"""

from __future__ import annotations

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from organizations import two_factor


class StrongboxAdminSite(admin.AdminSite):
    def has_permission(self, request) -> bool:
        return super().has_permission(request) and not self.needs_code(request)

    @staticmethod
    def needs_code(request) -> bool:
        return (
            request.user.is_authenticated
            and two_factor.session_requirement(request, None) is not None
        )

    def login(self, request, extra_context=None):
        if request.method == "GET" and self.needs_code(request):
            wanted = request.GET.get("next") or reverse("admin:index", current_app=self.name)
            return redirect(f"{reverse('two-factor')}?{urlencode({'next': wanted})}")
        return super().login(request, extra_context)
