"""The audit log page (``/audit/``): the organisation's events, filtered and paged, for
its administrators; the same selector and filters as ``GET /api/audit-events``."""

from __future__ import annotations

from django.views.generic import TemplateView

from audit.forms import AuditFilterForm
from audit.models import AuditEvent
from audit.selectors import audit_events_for_organisation
from config.errors import InvalidInput
from organizations.models import Role
from organizations.pages import TenantPage, paginate


class AuditLogView(TenantPage, TemplateView):
    template_name = "audit/events.html"
    required_role = Role.ADMIN

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = AuditFilterForm(self.request.GET or None)
        events = AuditEvent.objects.none()
        if not form.is_bound or form.is_valid():
            params = form.filter_params() if form.is_bound else {}
            try:
                events = audit_events_for_organisation(
                    organisation=self.organisation, params=params
                )
            except InvalidInput as exc:
                for name, messages in (exc.fields or {}).items():
                    form.add_error(name if name in form.fields else None, " ".join(messages))
        page, query = paginate(self.request, events, per_page=50)
        context.update(page=page, query=query, filter_form=form)
        return context
