"""Seed 003 schedule endpoints: get, create-or-update, retention preview, cron presets."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from api.base.pagination import paged_body, parse_limit, parse_offset
from api.base.schema import errors, page_of, uuid_path
from backups.api.serializers import TYPE_OF_KIND
from backups.selectors import environment_get
from config.errors import InvalidInput, fields_spelled
from organizations.models import Role
from organizations.tenancy import TenantViewSet
from schedules import selectors, services, timing
from schedules.api import serializers as s
from schedules.models import RETENTION_FIELDS

ENV_ID = uuid_path("env_id", "Environment UUID")
TAGS = ["seed 003: schedules"]
PREVIEW_DEFAULT_LIMIT = 100
PREVIEW_MAX_LIMIT = 1000

SCHEDULE_EXAMPLE = {
    "dbCron": "0 2 * * *",
    "dbFrequency": "daily",
    "fullCron": "0 3 * * 0",
    "fullFrequency": "weekly",
    "destinationIds": ["c3d4e5f6-0000-4000-8000-000000000001"],
    "enabled": True,
    "paused": False,
    "timezone": "Europe/London",
    "retainDaily": 7,
    "retainWeekly": 4,
    "retainMonthly": 6,
    "walEnabled": False,
    "walRetentionDays": None,
}


def seed003_field(name: str) -> str:
    """Seed 003's name of a schedule field: camelCase (``db_cron`` → ``dbCron``), and the
    interval rules are ``schedules`` (``interval_rules[0].hour`` → ``schedules[0].hour``)."""
    if name.startswith("interval_rules"):
        return "schedules" + name.removeprefix("interval_rules")
    return services.api_name(name)


class ScheduleViewSet(TenantViewSet):
    required_roles = {"retention_preview": Role.VIEWER, "upsert": Role.ADMIN}
    input_serializers = {
        "upsert": s.Seed003ScheduleInputSerializer,
        "retention_preview": s.Seed003RetentionPreviewInputSerializer,
    }

    def get_object(self):
        """The schedule being changed (the browsable API fills its form from it)."""
        return selectors.schedule_find(environment=self.environment())

    def environment(self):
        return environment_get(
            organisation=self.tenant.organisation, reference=self.kwargs["env_id"]
        )

    def _render(self, schedule):
        context = {"next_runs": selectors.schedule_next_runs(schedule)}
        return s.Seed003ScheduleSerializer(schedule, context=context).data

    @extend_schema(
        operation_id="environment_backup_schedule_retrieve",
        summary="Get backup schedule",
        description="Returns the current backup schedule for the environment, or 404 if no "
        "schedule exists.",
        parameters=[ENV_ID],
        responses={200: s.Seed003ScheduleSerializer, **errors(404)},
        tags=TAGS,
    )
    def retrieve(self, request, env_id):
        schedule = selectors.schedule_get(environment=self.environment())
        return Response(self._render(schedule))

    @extend_schema(
        operation_id="environment_backup_schedule_update",
        summary="Create or update backup schedule",
        description="Creates or updates the automated backup schedule for the environment "
        "including frequency, retention, and PITR settings. A field left out keeps its "
        "value. An invalid cron, timezone or unknown destination is a 400 naming the field. "
        "Needs the admin role.",
        parameters=[ENV_ID],
        request=s.Seed003ScheduleInputSerializer,
        responses={200: s.Seed003ScheduleSerializer, **errors(400, 404)},
        examples=[OpenApiExample("Schedule", value=SCHEDULE_EXAMPLE, request_only=True)],
        tags=TAGS,
    )
    def upsert(self, request, env_id):
        environment = self.environment()
        body = s.Seed003ScheduleInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        fields = {
            name: data.pop(name)
            for name in (*RETENTION_FIELDS, "enabled", "paused", "wal_enabled")
            if name in data
        }
        for api_field, name in (
            ("walEnabled", "wal_enabled"),
            ("walRetentionDays", "wal_retention_days"),
        ):
            if api_field in data:
                fields[name] = data.pop(api_field)
        with fields_spelled(seed003_field):
            schedule, _ = services.schedule_upsert(
                environment=environment,
                db_cron=data.get("dbCron"),
                db_frequency=data.get("dbFrequency"),
                full_cron=data.get("fullCron"),
                full_frequency=data.get("fullFrequency"),
                timezone=data.get("timezone"),
                destination_ids=data.get("destinationIds"),
                interval_rules=(
                    [dict(rule) for rule in data["schedules"]] if "schedules" in data else None
                ),
                **fields,
            )
        schedule = selectors.schedule_get(environment=environment)
        return Response(self._render(schedule))

    @extend_schema(
        operation_id="environment_backup_schedule_retention_preview",
        summary="Preview retention policy impact",
        description="Simulates retention policy changes and returns which backups would be "
        "deleted and which kept, each with the rule that keeps it or the reason it goes, and "
        "the bytes freed. Each database's backups are a series of their own (every rule "
        "counts per database); the environment's full and files backups are its own series. "
        "`totals.byDatabase` breaks the counts down per database. Nothing is deleted. "
        "The decisions are paged, newest backup first: `deleted` and `kept` hold those of "
        "the page (`limit`, `offset`; `count` is every decision's), while `deletedCount`, "
        "`keptCount`, `bytesFreed` and `totals` always cover the whole plan.",
        parameters=[
            ENV_ID,
            OpenApiParameter(
                "limit",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                description=f"Decisions per page (default {PREVIEW_DEFAULT_LIMIT}, at least "
                f"1; larger values are taken as {PREVIEW_MAX_LIMIT})",
            ),
            OpenApiParameter(
                "offset",
                OpenApiTypes.INT,
                OpenApiParameter.QUERY,
                description="How many decisions to skip (default 0)",
            ),
        ],
        request=s.Seed003RetentionPreviewInputSerializer,
        responses={200: s.Seed003RetentionPreviewSerializer, **errors(400, 404)},
        examples=[
            OpenApiExample(
                "Proposal", value={"retainDaily": 7, "retainWeekly": 4}, request_only=True
            ),
            OpenApiExample(
                "Preview",
                response_only=True,
                value={
                    "deleted": [
                        {
                            "id": "1f0e…",
                            "name": "quant-gov-dashboard-staging-2026-11-01T02-00-00-000Z",
                            "type": "db",
                            "status": "completed",
                            "trigger": "scheduled",
                            "size": 1945663,
                            "createdAt": "2026-11-01T02:00:00Z",
                            "reasons": ["not kept by any rule"],
                            "reason": "not kept by any rule",
                            "expiresAt": "2026-11-23T10:00:00Z",
                            "databaseId": "5d2c…",
                        }
                    ],
                    "kept": [
                        {
                            "id": "8d1e…",
                            "name": "quant-gov-dashboard-staging-2026-11-20T02-00-00-000Z",
                            "type": "db",
                            "status": "completed",
                            "trigger": "scheduled",
                            "size": 1945663,
                            "createdAt": "2026-11-20T02:00:00Z",
                            "reasons": ["daily 2026-11-20", "weekly 2026-W47"],
                            "reason": "daily 2026-11-20",
                            "expiresAt": None,
                            "databaseId": "5d2c…",
                        }
                    ],
                    "deletedCount": 1,
                    "keptCount": 1,
                    "bytesFreed": 1945663,
                    "totals": {
                        "kept": 1,
                        "deleted": 1,
                        "bytesFreed": 1945663,
                        "byDatabase": [
                            {
                                "scope": "database",
                                "databaseId": "5d2c…",
                                "name": "Orders DB",
                                "kept": 1,
                                "deleted": 1,
                                "bytesFreed": 1945663,
                            },
                            {
                                "scope": "database",
                                "databaseId": "9a7b…",
                                "name": "Users DB",
                                "kept": 0,
                                "deleted": 0,
                                "bytesFreed": 0,
                            },
                        ],
                    },
                    "timezone": "Europe/London",
                    "policy": {"retainDaily": 7, "retainWeekly": 4},
                    "count": 2,
                    "limit": 100,
                    "offset": 0,
                },
            ),
        ],
        tags=TAGS,
    )
    def retention_preview(self, request, env_id):
        limit = parse_limit(
            request.query_params.get("limit"),
            default=PREVIEW_DEFAULT_LIMIT,
            maximum=PREVIEW_MAX_LIMIT,
        )
        offset = parse_offset(request.query_params.get("offset"))
        environment = self.environment()
        body = s.Seed003RetentionPreviewInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        overrides = {
            services.api_name(name): value
            for name, value in body.validated_data.items()
            if name in RETENTION_FIELDS
        }
        preview = selectors.retention_preview(
            environment=environment,
            overrides=overrides,
            tz=body.validated_data.get("timezone"),
            now=timezone.now(),
        )
        plan = preview.plan
        page = plan.decisions[offset : offset + limit]
        deleted, kept = [], []
        for row in selectors.retention_preview_rows(environment=environment, decisions=page):
            backup, decision = row.backup, row.decision
            line = {
                "id": backup.pk,
                "name": backup.name,
                "type": TYPE_OF_KIND.get(backup.kind, backup.kind),
                "status": backup.status,
                "trigger": backup.trigger,
                "size": backup.size or 0,
                "createdAt": backup.created_at,
                "reasons": decision.reasons,
                "reason": decision.reasons[0] if decision.reasons else "",
                "expiresAt": decision.expires_at,
                "databaseId": backup.database_id,
            }
            (kept if decision.keep else deleted).append(line)
        data = {
            "deleted": deleted,
            "kept": kept,
            "deletedCount": preview.plan.deleted_count,
            "keptCount": preview.plan.kept_count,
            "bytesFreed": preview.plan.bytes_freed,
            "totals": {
                "kept": preview.plan.kept_count,
                "deleted": preview.plan.deleted_count,
                "bytesFreed": preview.plan.bytes_freed,
                "byDatabase": [
                    {
                        "scope": line.scope,
                        "databaseId": line.database_id,
                        "name": line.name,
                        "kept": line.kept,
                        "deleted": line.deleted,
                        "bytesFreed": line.bytes_freed,
                    }
                    for line in preview.by_database
                ],
            },
            "timezone": preview.timezone,
            "policy": preview.policy.to_api(),
            "count": len(plan.decisions),
            "limit": limit,
            "offset": offset,
        }
        return Response(s.Seed003RetentionPreviewSerializer(data).data)

    @extend_schema(
        operation_id="backup_cron_presets",
        summary="Get cron expression presets",
        description="Returns a list of common cron expression presets for backup scheduling, "
        "each with its next runs in `timezone` (default UTC).",
        parameters=[
            OpenApiParameter(
                "timezone",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="IANA timezone for nextRuns (extension), e.g. Europe/London",
            )
        ],
        responses={
            200: page_of(s.Seed003CronPresetSerializer, "Seed003CronPresetList"),
            **errors(400),
        },
        examples=[
            OpenApiExample(
                "Presets",
                value={
                    "results": [
                        {
                            "name": "daily",
                            "cron": "0 2 * * *",
                            "description": "Every day at 02:00",
                            "nextRuns": ["2026-11-24T02:00:00+00:00"],
                        }
                    ],
                    "count": 1,
                    "limit": 1,
                    "offset": 0,
                },
                response_only=True,
            )
        ],
        tags=["seed 003: schedules"],
    )
    def cron_presets(self, request):
        tz = request.query_params.get("timezone") or "UTC"
        try:
            zone = timing.validate_timezone(tz)
        except timing.ScheduleError as exc:
            raise InvalidInput(exc.message, fields={"timezone": [exc.message]}) from None
        presets = timing.presets_with_next_runs(zone, timezone.now())
        return Response(paged_body(presets, len(presets), len(presets), 0))
