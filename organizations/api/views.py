"""Strongbox's own resources: organisations, projects, environments, databases; JWTs.

Reads need the viewer role, writes the admin role (``TenantViewSetMixin``).
Everything is looked up through ``restrict()``, so another organisation's id is a 404.
Writes go through ``organizations.services``, which hold the rules.
"""

from contextlib import contextmanager

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base.pagination import offset_page, paged_body
from api.base.routes import get_or_404
from api.base.schema import OFFSET_PARAM, errors, limit_param, page_of, uuid_path
from audit.services import audit_sign_in
from config.errors import ApplicationError, InvalidInput
from organizations import services, two_factor
from organizations.api import serializers as s
from organizations.authentication import TokenPrincipal, issue_jwt
from organizations.lockout import login_failures_forget, login_locked_out
from organizations.models import Database, Environment, Project
from organizations.tenancy import TenantViewSet, memberships_of


class InvalidCredentials(ApplicationError):
    status_code = 401
    code = "invalid_credentials"


class ObtainTokenView(APIView):
    """Exchange a username and password (and, for a user with two-factor authentication on,
    the current one-time code ``otp``) for a short-lived JWT."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        operation_id="auth_token_create",
        summary="Obtain a JWT",
        request=s.TokenRequestSerializer,
        responses={200: s.TokenResponseSerializer, **errors(400, 401)},
        tags=["auth"],
        auth=[],
    )
    def post(self, request):
        data = s.TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        # With the request, so that django-axes counts failures and refuses a lockout.
        user = authenticate(request, username=username, password=data.validated_data["password"])
        if user is None:
            raise login_locked_out(request) or InvalidCredentials("Invalid username or password.")
        otp = two_factor.confirmed_device(user) is not None
        if otp:
            # Like the form's second step: the code counts toward the same lockout.
            if "otp" not in data.validated_data:
                raise InvalidInput(
                    "otp: this user has two-factor authentication on; send the current code.",
                    fields={"otp": ["Required for this user."]},
                )
            if two_factor.code_check(request, user=user, code=data.validated_data["otp"]) is None:
                raise login_locked_out(request) or two_factor.InvalidCode(
                    "otp: " + two_factor.wrong_code_message(two_factor.confirmed_device(user)),
                    fields={"otp": ["Wrong or already used code."]},
                )
        login_failures_forget(request, username=username)
        # Failures are recorded by the user_login_failed signal; a JWT never calls login().
        audit_sign_in(user=user, method="jwt")
        token, ttl = issue_jwt(user, otp=otp)
        return Response({"token": token, "tokenType": "Bearer", "expiresIn": ttl})


class OrganizationListView(APIView):
    """The organisations the caller may act in (an API token: its own)."""

    @extend_schema(
        operation_id="organizations_list",
        summary="Organisations the caller belongs to",
        parameters=[limit_param(50), OFFSET_PARAM],
        responses={200: page_of(s.OrganizationSerializer, "OrganizationPage"), **errors(400)},
        tags=["organizations"],
    )
    def get(self, request):
        if isinstance(request.auth, TokenPrincipal):
            token = request.auth.token
            rows = [(token.organisation, token.role)]
        else:
            rows = [(m.organisation, m.role) for m in memberships_of(request.user)]
        rows.sort(key=lambda row: row[0].name)
        rows = [{"id": o.id, "name": o.name, "slug": o.slug, "role": role} for o, role in rows]
        items, count, limit, offset = offset_page(request, rows, default_limit=50)
        data = s.OrganizationSerializer(items, many=True).data
        return Response(paged_body(data, count, limit, offset))


@contextmanager
def _in_api_terms(serializer):
    """Rename the model fields a service names in an ``InvalidInput`` to the API's
    (``files_path`` -> ``filesPath``); rendered like any validation error, so the body
    is ``{"error": {"code", "message": "filesPath: …", "fields": {"filesPath": […]}}}``."""
    try:
        yield
    except InvalidInput as exc:
        if not exc.fields:
            raise
        names = {field.source: name for name, field in serializer.fields.items()}
        raise ValidationError(
            {names.get(field, field): messages for field, messages in exc.fields.items()}
        ) from exc


class _CrudViewSet(TenantViewSet):
    """list/create under an optional parent; retrieve/partial_update/destroy by id."""

    # The docstring is each operation's description in the schema. Writes call the
    # model's services through ``create_object``/``update_object``/``delete_object``.

    model = None
    what = ""
    id_kwarg = ""
    parent_model = None
    parent_kwarg = ""
    parent_field = ""
    parent_what = ""
    output = None
    write = None
    default_limit = 50

    @property
    def input_serializers(self):
        return {"create": self.write, "partial_update": self.write}

    def queryset(self):
        return self.restrict(self.model.objects.all())

    def get_parent(self):
        return get_or_404(
            self.restrict(self.parent_model.objects.all()),
            self.kwargs[self.parent_kwarg],
            what=self.parent_what,
        )

    def get_object(self):
        return get_or_404(self.queryset(), self.kwargs[self.id_kwarg], what=self.what)

    def list_page(self, request, **kwargs):
        queryset = self.queryset()
        if self.parent_model is not None:
            queryset = queryset.filter(**{self.parent_field: self.get_parent()})
        items, count, limit, offset = offset_page(
            request, queryset, default_limit=self.default_limit
        )
        return Response(paged_body(self.output(items, many=True).data, count, limit, offset))

    def create(self, request, **kwargs):
        parent = self.get_parent() if self.parent_model is not None else None
        data = self.write(data=request.data)
        data.is_valid(raise_exception=True)
        with _in_api_terms(data):
            obj = self.create_object(parent, data.validated_data)
        return Response(self.output(obj).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request, **kwargs):
        return Response(self.output(self.get_object()).data)

    def partial_update(self, request, **kwargs):
        obj = self.get_object()
        data = self.write(obj, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        with _in_api_terms(data):
            obj = self.update_object(obj, data.validated_data)
        return Response(self.output(obj).data)

    def destroy(self, request, **kwargs):
        self.delete_object(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    # The validated data is keyed by model field (the serializers' ``source``), which
    # are the services' argument names; a field left out of a PATCH keeps its value.

    def create_object(self, parent, fields: dict):
        raise NotImplementedError

    def update_object(self, obj, fields: dict):
        raise NotImplementedError

    def delete_object(self, obj) -> None:
        raise NotImplementedError


def _schema_per_action(**decorators):
    """Like ``extend_schema_view``, for action names drf-spectacular does not look for.

    Each action gets its own wrapper in the subclass, so the annotation does not leak
    into the shared base method.
    """

    def decorate(view):
        for name, decorator in decorators.items():
            base = getattr(view, name)

            def action(self, request, *args, __base=base, **kwargs):
                return __base(self, request, *args, **kwargs)

            action.__name__ = action.__qualname__ = name
            setattr(view, name, decorator(action))
        return view

    return decorate


def _crud_schema(
    *, tag: str, what: str, output, write, id_param, parent_param=None, default_limit=50
):
    page = page_of(output, f"{what}Page")
    list_params = [p for p in (parent_param,) if p] + [limit_param(default_limit), OFFSET_PARAM]
    create_params = [p for p in (parent_param,) if p]
    not_found = (404,) if parent_param else ()
    return _schema_per_action(
        list_page=extend_schema(
            operation_id=f"{what.lower()}s_list",
            summary=f"List {what.lower()}s",
            parameters=list_params,
            responses={200: page, **errors(400, *not_found)},
            tags=[tag],
        ),
        create=extend_schema(
            operation_id=f"{what.lower()}s_create",
            summary=f"Create a {what.lower()} (admin)",
            parameters=create_params,
            request=write,
            responses={201: output, **errors(400, *not_found)},
            tags=[tag],
        ),
        retrieve=extend_schema(
            operation_id=f"{what.lower()}_retrieve",
            summary=f"Get a {what.lower()}",
            parameters=[id_param],
            responses={200: output, **errors(404)},
            tags=[tag],
        ),
        partial_update=extend_schema(
            operation_id=f"{what.lower()}_update",
            summary=f"Update a {what.lower()} (admin)",
            parameters=[id_param],
            request=write,
            responses={200: output, **errors(400, 404)},
            tags=[tag],
        ),
        destroy=extend_schema(
            operation_id=f"{what.lower()}_destroy",
            summary=f"Delete a {what.lower()} (admin)",
            parameters=[id_param],
            responses={204: None, **errors(404, 409)},
            tags=[tag],
        ),
    )


PROJECT_ID = uuid_path("projectId", "Project UUID")
ENV_ID = uuid_path("env_id", "Environment UUID")
DATABASE_ID = uuid_path("databaseId", "Database UUID")


@_crud_schema(
    tag="projects",
    what="Project",
    output=s.ProjectSerializer,
    write=s.ProjectWriteSerializer,
    id_param=PROJECT_ID,
)
class ProjectViewSet(_CrudViewSet):
    model = Project
    what = "Project"
    id_kwarg = "projectId"
    output = s.ProjectSerializer
    write = s.ProjectWriteSerializer

    def create_object(self, parent, fields: dict) -> Project:
        return services.project_create(organisation=self.tenant.organisation, **fields)

    def update_object(self, obj: Project, fields: dict) -> Project:
        return services.project_update(project=obj, **fields)

    def delete_object(self, obj: Project) -> None:
        services.project_delete(project=obj)


@_crud_schema(
    tag="environments",
    what="Environment",
    output=s.EnvironmentSerializer,
    write=s.EnvironmentWriteSerializer,
    id_param=ENV_ID,
    parent_param=PROJECT_ID,
)
class EnvironmentViewSet(_CrudViewSet):
    model = Environment
    what = "Environment"
    id_kwarg = "env_id"
    parent_model = Project
    parent_kwarg = "projectId"
    parent_field = "project"
    parent_what = "Project"
    output = s.EnvironmentSerializer
    write = s.EnvironmentWriteSerializer

    def create_object(self, parent: Project, fields: dict) -> Environment:
        return services.environment_create(project=parent, **fields)

    def update_object(self, obj: Environment, fields: dict) -> Environment:
        return services.environment_update(environment=obj, **fields)

    def delete_object(self, obj: Environment) -> None:
        services.environment_delete(environment=obj)


@_crud_schema(
    tag="databases",
    what="Database",
    output=s.DatabaseSerializer,
    write=s.DatabaseWriteSerializer,
    id_param=DATABASE_ID,
    parent_param=ENV_ID,
)
class DatabaseViewSet(_CrudViewSet):
    model = Database
    what = "Database"
    id_kwarg = "databaseId"
    parent_model = Environment
    parent_kwarg = "env_id"
    parent_field = "environment"
    parent_what = "Environment"
    output = s.DatabaseSerializer
    write = s.DatabaseWriteSerializer

    def create_object(self, parent: Environment, fields: dict) -> Database:
        return services.database_create(environment=parent, **fields)

    def update_object(self, obj: Database, fields: dict) -> Database:
        return services.database_update(database=obj, **fields)

    def delete_object(self, obj: Database) -> None:
        services.database_delete(database=obj)
