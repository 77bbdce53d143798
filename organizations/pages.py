"""The base of every HTML page of every app, built on ``organizations.tenancy``.

``TenantPage``: signed in, acting in one organisation (``request.tenant``) with a role at
least ``required_role``. Selectors and services raise the application errors; they become
a 404 or a 403 here, once. ``TenantAction`` is the POST-only action on top of it. Every
app's views may import this module; it imports no app's views.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.views.generic import View

from config.errors import ApplicationError, Forbidden, NotFound
from organizations.models import Environment, Organisation, Role
from organizations.tenancy import SESSION_KEY, TenantViewMixin


class _TenantRequired:
    """Runs after ``TenantViewMixin`` has set ``request.tenant``."""

    needs_tenant = True

    def dispatch(self, request, *args, **kwargs):
        if self.needs_tenant and getattr(request, "tenant", None) is None:
            messages.info(request, "You are not a member of any organisation yet.")
            return redirect("dashboard")
        return super().dispatch(request, *args, **kwargs)


class TenantPage(LoginRequiredMixin, TenantViewMixin, _TenantRequired):
    """Signed in, in one organisation, with at least ``required_role``.

    A user without an organisation is sent to the dashboard (which explains why).
    The organisation in use is remembered in the session so the API endpoints the
    page's scripts call (the SSE progress streams) act in the same one.
    """

    def dispatch(self, request, *args, **kwargs):
        try:
            response = super().dispatch(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except Forbidden as exc:
            raise PermissionDenied(exc.message) from exc
        tenant = getattr(request, "tenant", None)
        if tenant is not None and request.session.get(SESSION_KEY) != str(tenant.organisation.id):
            request.session[SESSION_KEY] = str(tenant.organisation.id)
        return response

    @property
    def tenant(self):
        return self.request.tenant

    @property
    def organisation(self) -> Organisation:
        return self.request.tenant.organisation

    def environment(self, environment_id) -> Environment:
        """One environment of the organisation (another organisation's is a 404)."""
        environment = (
            self.restrict(Environment.objects.select_related("project__organisation"))
            .filter(pk=environment_id)
            .first()
        )
        if environment is None:
            raise Http404("Environment not found.")
        return environment

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        context["can_operate"] = bool(tenant and tenant.can(Role.OPERATOR))
        context["can_admin"] = bool(tenant and tenant.can(Role.ADMIN))
        return context


class TenantAction(TenantPage, View):
    """A POST-only action: call one service, report its outcome, go back.

    ``perform()`` returns the success message; an ``ApplicationError`` from the
    service (a conflict, invalid input) is shown as an error message instead.
    """

    http_method_names = ["post"]

    def perform(self, request, **kwargs) -> str:
        raise NotImplementedError

    def success_url(self, **kwargs) -> str:
        raise NotImplementedError

    def post(self, request, **kwargs):
        try:
            message = self.perform(request, **kwargs)
        except (NotFound, Forbidden):
            raise
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            if message:
                messages.success(request, message)
        return redirect(self.success_url(**kwargs))


def paginate(request, queryset, per_page: int = 20):
    """A page of ``queryset`` and the query string to keep the other parameters."""
    page = Paginator(queryset, per_page).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    return page, params.urlencode()


def phase_timeline(phases: list[dict]) -> list[dict]:
    """Phases as ``backups.progress.phase_states`` gives them (the progress event's
    ``phases``), as Gantt bars: ``started_at``/``finished_at`` parsed, offset and width in %
    of the whole run (phases overlap: compression and upload run while the dump streams).
    static/js/live_run.js draws the same bars from the same event."""
    bars = []
    for phase in phases:
        bar = {
            "name": phase["name"],
            "state": phase["state"],
            "duration_sec": phase.get("durationSec"),
            "offset": 0,
            "width": 0,
        }
        for key, source in (("started_at", "startedAt"), ("finished_at", "finishedAt")):
            try:
                bar[key] = datetime.fromisoformat(phase[source]) if phase.get(source) else None
            except (TypeError, ValueError):
                bar[key] = None
        bars.append(bar)
    started = [bar for bar in bars if bar["started_at"]]
    if not started:
        return bars
    now = timezone.now()
    origin = min(bar["started_at"] for bar in started)
    span = (max(bar["finished_at"] or now for bar in started) - origin).total_seconds() or 1.0
    for bar in started:
        end = bar["finished_at"] or now
        bar["offset"] = round(100 * (bar["started_at"] - origin).total_seconds() / span, 1)
        bar["width"] = max(round(100 * (end - bar["started_at"]).total_seconds() / span, 1), 1)
    return bars
