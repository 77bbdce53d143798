from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.generic import DetailView, TemplateView

from organizations.models import Environment
from organizations.selectors import projects_with_environments
from organizations.tenancy import SESSION_KEY, TenantViewMixin, memberships_of


class DashboardView(LoginRequiredMixin, TenantViewMixin, TemplateView):
    template_name = "dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        context["projects"] = (
            projects_with_environments(organisation=tenant.organisation) if tenant else []
        )
        return context


class EnvironmentDetailView(LoginRequiredMixin, TenantViewMixin, DetailView):
    template_name = "environment_detail.html"
    context_object_name = "environment"

    def get_queryset(self):
        return self.restrict(Environment.objects.select_related("project")).filter(
            project_id=self.kwargs["project_id"]
        )


@login_required
@require_POST
def switch_organisation(request):
    wanted = request.POST.get("organisation", "")
    membership = next(
        (m for m in memberships_of(request.user) if str(m.organisation_id) == wanted), None
    )
    if membership is not None:
        request.session[SESSION_KEY] = str(membership.organisation_id)
    target = request.POST.get("next") or "dashboard"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "dashboard"
    return redirect(target)


def environment_or_404(tenant, environment_id) -> Environment:
    return get_object_or_404(
        Environment.objects.filter(project__organisation=tenant.organisation), pk=environment_id
    )
