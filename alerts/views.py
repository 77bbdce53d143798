"""The alerts inbox: read and dismiss (operators); everyone in the organisation reads."""

from __future__ import annotations

from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import TemplateView

from alerts.selectors import alert_get, alerts_for_organisation
from alerts.services import alert_dismiss, alert_mark_read
from organizations.models import Role
from organizations.pages import TenantAction, TenantPage, paginate

FILTERS = {
    "open": "Open",
    "unread": "Unread",
    "all": "All, with dismissed",
}


class AlertInboxView(TenantPage, TemplateView):
    template_name = "alerts/inbox.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        shown = self.request.GET.get("show", "open")
        if shown not in FILTERS:
            shown = "open"
        alerts = alerts_for_organisation(
            organisation=self.organisation, include_dismissed=shown == "all"
        ).select_related("backup")
        if shown == "open":
            alerts = alerts.filter(resolved_at__isnull=True)
        elif shown == "unread":
            alerts = alerts.filter(read_at__isnull=True)
        page, query = paginate(self.request, alerts, per_page=25)
        context.update(page=page, query=query, shown=shown, filters=FILTERS)
        return context


class _AlertAction(TenantAction):
    required_role = Role.OPERATOR

    def alert(self, alert_id):
        return alert_get(organisation=self.organisation, alert_id=alert_id)

    def success_url(self, **kwargs) -> str:
        back = self.request.POST.get("next", "")
        if back and url_has_allowed_host_and_scheme(back, allowed_hosts={self.request.get_host()}):
            return back
        return reverse("alerts-inbox")


class AlertReadView(_AlertAction):
    def perform(self, request, **kwargs) -> str:
        alert_mark_read(alert=self.alert(kwargs["pk"]), user=request.user)
        return ""


class AlertDismissView(_AlertAction):
    def perform(self, request, **kwargs) -> str:
        alert = alert_dismiss(alert=self.alert(kwargs["pk"]), user=request.user)
        return f"Dismissed “{alert.title}”."
