from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from config.errors import ApplicationError
from drills.models import Drill, DrillPolicy
from drills.services import POLICY_FIELDS, SERVER_ENGINES, drill_request
from organizations.hostpolicy import host_problem


class DrillPolicyForm(forms.ModelForm):
    target_password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only; empty keeps the stored password.",
    )

    class Meta:
        model = DrillPolicy
        fields = ["database", *POLICY_FIELDS]

    def clean(self):
        data = super().clean()
        database, host = data.get("database"), data.get("target_host")
        if database is not None and host:
            if database.engine not in SERVER_ENGINES:
                self.add_error("target_host", "This engine's drills run in a temp file.")
            elif problem := host_problem(database.organisation, host, data.get("target_port")):
                self.add_error("target_host", problem)
        if not data.get("target_password") and self.instance.pk:
            # Empty keeps the stored password (it is never shown).
            data["target_password"] = DrillPolicy.objects.get(pk=self.instance.pk).target_password
        return data


@admin.register(DrillPolicy)
class DrillPolicyAdmin(admin.ModelAdmin):
    form = DrillPolicyForm
    list_display = ["database", "enabled", "cron", "frequency", "timezone", "target_host"]
    list_filter = ["enabled"]
    search_fields = ["database__name"]
    readonly_fields = ["last_slot_at"]
    actions = ["drill_now"]

    def save_model(self, request, obj, form, change):
        # The schedule's anchor, as drill_policy_upsert sets it: no slot from before is run.
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)

    @admin.action(description="Run a restore drill now")
    def drill_now(self, request, queryset):
        for policy in queryset.select_related("database__environment"):
            try:
                drill = drill_request(database=policy.database, user=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{policy.database}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"{policy.database}: drill {drill.id} scheduled.")


@admin.register(Drill)
class DrillAdmin(admin.ModelAdmin):
    list_display = [
        "database",
        "environment",
        "backup",
        "status",
        "trigger",
        "rto_seconds",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger"]
    search_fields = ["database__name", "message", "throwaway_name"]
    readonly_fields = [f.name for f in Drill._meta.fields]
