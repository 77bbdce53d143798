"""The alerts inbox: read and dismiss (operators); everyone in the organisation reads.
The notification channel pages (admins): list, create, edit with the channel's recent
deliveries, send a test, delete; every write is one call of ``alerts.services``."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import TemplateView

from alerts.forms import NotificationChannelForm
from alerts.selectors import (
    alert_get,
    alerts_for_organisation,
    channel_get,
    channel_recent_deliveries,
    channels_for_organisation,
)
from alerts.services import (
    alert_dismiss,
    alert_mark_read,
    notification_channel_create,
    notification_channel_delete,
    notification_channel_test,
    notification_channel_update,
)
from config.errors import InvalidInput
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


# Notification channels ---------------------------------------------------------------------


class ChannelListView(TenantPage, TemplateView):
    template_name = "alerts/channels.html"
    required_role = Role.ADMIN

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["channels"] = channels_for_organisation(organisation=self.organisation)
        return context


class ChannelFormView(TenantPage, TemplateView):
    """Create (no ``pk``) or edit a channel; the edit page shows its recent deliveries."""

    template_name = "alerts/channel_form.html"
    required_role = Role.ADMIN

    def channel(self):
        if "pk" not in self.kwargs:
            return None
        return channel_get(organisation=self.organisation, channel_id=self.kwargs["pk"])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        channel = kwargs.get("channel", self.channel())
        context["channel"] = channel
        context["form"] = kwargs.get("form") or NotificationChannelForm(channel=channel)
        if channel is not None:
            context["deliveries"] = channel_recent_deliveries(channel=channel)
        return context

    def post(self, request, *args, **kwargs):
        channel = self.channel()
        form = NotificationChannelForm(request.POST, channel=channel)
        if form.is_valid():
            try:
                if channel is None:
                    channel = notification_channel_create(
                        organisation=self.organisation, **form.values()
                    )
                    messages.success(request, f"Channel “{channel.name}” created.")
                else:
                    notification_channel_update(channel=channel, **form.values())
                    messages.success(request, f"Channel “{channel.name}” saved.")
            except InvalidInput as exc:
                form.add_service_errors(exc.fields, exc.message)
                channel = self.channel()  # as stored, not as the refused input left it
            else:
                return redirect("notification-channels")
        context = self.get_context_data(form=form, channel=channel)
        return self.render_to_response(context, status=400)


class ChannelTestView(TenantAction):
    """Send a test message now and say how it went."""

    required_role = Role.ADMIN

    def perform(self, request, **kwargs) -> str:
        channel = channel_get(organisation=self.organisation, channel_id=kwargs["pk"])
        delivery = notification_channel_test(channel=channel)
        if not delivery.ok:
            raise InvalidInput(f"{channel.name}: the test message failed: {delivery.error}")
        return f"{channel.name}: test message delivered."

    def success_url(self, **kwargs) -> str:
        back = self.request.POST.get("next", "")
        if back and url_has_allowed_host_and_scheme(back, allowed_hosts={self.request.get_host()}):
            return back
        return reverse("notification-channels")


class ChannelDeleteView(TenantAction):
    required_role = Role.ADMIN

    def perform(self, request, **kwargs) -> str:
        channel = channel_get(organisation=self.organisation, channel_id=kwargs["pk"])
        notification_channel_delete(channel=channel)
        return f"Channel “{channel.name}” deleted."

    def success_url(self, **kwargs) -> str:
        return reverse("notification-channels")
