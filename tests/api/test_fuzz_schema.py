"""Schemathesis over every operation of the published schema, against a live server.

One pytest item per operation (``schema.parametrize()``), each against pytest-django's
``live_server`` (real HTTP into this process) on the test database, which holds two
organisations with projects, environments, databases, local and S3 destinations, backups,
restores, alerts and schedules; a real admin token of the first signs every request. The
objects the path parameters name have fixed ids (``IDS``), so the schemathesis config can
point every path parameter at a real object and the generated bodies and queries reach the
code behind the 404s. Each operation gets schemathesis's own cases (schema examples, the
coverage phase's boundary values, missing and unknown fields and unsupported methods, then
fuzzed data, valid and invalid) with every built-in check: ``not_a_server_error``,
``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
``response_schema_conformance``, ``negative_data_rejection``, ``positive_data_acceptance``,
``unsupported_method``, ``ignored_auth``, ...

The operations are read from the schema, so an endpoint added later is fuzzed without a
change here. Deterministic: a fixed seed (17), derandomized Hypothesis, no example database.
(``schemathesis.pytest.from_fixture`` would load the schema from the live server itself,
but schemathesis 4.32 cannot run lazily under pytest 9: the schema is generated here, the
same document ``/api/schema/`` serves, as ``test_the_live_server_serves_the_fuzzed_schema``
checks.)
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from backups.models import BackupKind
from destinations.models import DestinationKind
from organizations.models import Role
from tests import factories
from tests.fixtures.s3 import s3_destination_config
from tests.fixtures.tenants import tenant_dir

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

SEED = 17
EXAMPLES_PER_OPERATION = 5

# The first organisation's objects that path parameters name; ``spare_*`` ones are for the
# DELETE operations, which then succeed once without taking away what the others read.
IDS = {
    name: str(uuid.UUID(int=(0x17 << 120) + number))
    for number, name in enumerate(
        [
            "project",
            "spare_project",
            "environment",
            "spare_environment",
            "database",
            "spare_database",
            "destination",
            "s3_destination",
            "spare_destination",
            "backup",
            "full_backup",
            "spare_backup",
            "restore",
            "alert",
            "organisation",
            "channel",
            "spare_channel",
        ],
        start=1,
    )
}
SLUGS = {"organisation": "quant-gov", "application": "dashboard", "environment": "staging"}


def _operation_parameters() -> list[dict]:
    """schemathesis ``[[operations]]`` entries: which real object each path parameter names.

    ``id`` means another resource under each prefix; DELETE takes the spare objects; the
    connection test takes the S3 destination (it reaches this run's S3 server). schemathesis
    uses the first entry that matches an operation, so the narrow ones come first.
    """
    spare = {
        "/api/backup-destinations/{id}": {"id": IDS["spare_destination"]},
        "/api/backups/{id}": {"id": IDS["spare_backup"]},
        "/api/databases/{databaseId}": {"databaseId": IDS["spare_database"]},
        "/api/environments/{env_id}": {"env_id": IDS["spare_environment"]},
        "/api/projects/{projectId}": {"projectId": IDS["spare_project"]},
        "/api/notification-channels/{id}": {"id": IDS["spare_channel"]},
    }
    entries = [
        {"include-name": f"DELETE {path}", "parameters": values} for path, values in spare.items()
    ]
    entries.append(
        {
            "include-name": "POST /api/backup-destinations/{id}/test",
            "parameters": {"id": IDS["s3_destination"]},
        }
    )
    # The report reads every app's rows: fuzzed against the organisation itself.
    entries.append(
        {
            "include-name": "GET /api/organizations/{id}/evidence",
            "parameters": {"id": IDS["organisation"]},
        }
    )
    by_prefix = {
        "/api/backup-alerts/": IDS["alert"],
        "/api/backup-destinations/": IDS["destination"],
        "/api/backups/": IDS["backup"],
        "/api/notification-channels/": IDS["channel"],
        "/api/restores/": IDS["restore"],
    }
    entries += [
        {"include-path-regex": f"^{prefix}\\{{id\\}}", "parameters": {"id": value}}
        for prefix, value in by_prefix.items()
    ]
    return entries


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True},
        # A progress stream of a finished job ends by itself; this bounds any other.
        "max-stream-events": 20,
        "request-timeout": 30,
        "parameters": {
            "projectId": IDS["project"],
            "env_id": IDS["environment"],
            "environmentId": IDS["environment"],
            "databaseId": IDS["database"],
            "backupDestinationId": IDS["destination"],
            **SLUGS,
        },
        "operations": _operation_parameters(),
    }
)


def _published_schema() -> dict:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


SCHEMA = schemathesis.openapi.from_dict(_published_schema(), config=CONFIG)

# Every check but one: ``positive_data_acceptance`` wants every schema-valid request
# accepted, but what no JSON schema can state is rightly a 400 naming the field: ids in a
# body that name no object of the organisation (``destinationIds``, ``databaseId``, a
# ``marker`` or ``startId``), a cursor or token not issued by this server, an IANA time zone
# name, a server path outside the organisation's directories, a parameter of another kind
# than the destination's. ``tests/api/test_strict_input.py`` keeps the schema's side of it
# (what the schema can say, it says: required S3 parameters, non-empty rule minutes).


@dataclass
class FuzzTally:
    """What the run sent and what it found, for the one summary line."""

    cases: int = 0
    server_errors: int = 0
    operations: set[str] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"schemathesis {schemathesis.__version__}: {self.cases} cases over "
            f"{len(self.operations)} operations, {len(self.failures)} failures, "
            f"{self.server_errors} server errors"
        )


@pytest.fixture(scope="module")
def fuzz_tally(request):
    """One line for the whole run, printed after the last operation."""
    tally = FuzzTally()
    yield tally
    # Past pytest's capture, so that the line shows in every run, passed or failed.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{tally.summary()}")  # noqa: T201


def _organisation_objects(organisation, s3_server, s3_bucket, ids=None) -> None:
    """Projects, environments, databases, destinations, backups, a restore, an alert and a
    schedule of one organisation; with ``ids``, the objects get those fixed ids."""

    def given(name):
        return {"id": ids[name]} if ids else {}

    project = factories.ProjectFactory(
        organisation=organisation, name="Dashboard", slug=SLUGS["application"], **given("project")
    )
    factories.ProjectFactory(organisation=organisation, slug="spare", **given("spare_project"))
    environment = factories.EnvironmentFactory(
        project=project, name="Staging", slug=SLUGS["environment"], **given("environment")
    )
    factories.EnvironmentFactory(project=project, slug="spare", **given("spare_environment"))
    database = factories.DatabaseFactory(
        environment=environment, name="Main", slug="main", **given("database")
    )
    factories.DatabaseFactory(environment=environment, slug="spare", **given("spare_database"))
    local = factories.DestinationFactory(
        organisation=organisation,
        name="Local disk",
        config={"path": str(tenant_dir(organisation, "destination"))},
        **given("destination"),
    )
    parameters, secrets = s3_destination_config(s3_server, s3_bucket, prefix=organisation.slug)
    s3 = factories.DestinationFactory(
        organisation=organisation,
        name="Bucket",
        kind=DestinationKind.S3,
        config=parameters,
        secrets=secrets,
        is_default=False,
        **given("s3_destination"),
    )
    factories.DestinationFactory(
        organisation=organisation, is_default=False, **given("spare_destination")
    )
    factories.ScheduleFactory(environment=environment)
    backup = factories.BackupFactory(environment=environment, database=database, **given("backup"))
    full = factories.BackupFactory(
        environment=environment, kind=BackupKind.FULL, database=None, **given("full_backup")
    )
    for each in (backup, full):
        factories.BackupCopyFactory(backup=each, destination=local)
        factories.BackupCopyFactory(backup=each, destination=s3)
    factories.BackupFactory(environment=environment, database=database, **given("spare_backup"))
    factories.RestoreFactory(backup=backup, status="completed", **given("restore"))
    factories.AlertFactory(organisation=organisation, **given("alert"))
    # A test message goes to a closed loopback port: a failed delivery, answered 200.
    factories.NotificationChannelFactory(organisation=organisation, **given("channel"))
    factories.NotificationChannelFactory(organisation=organisation, **given("spare_channel"))


@pytest.fixture
def fuzz_api(live_server, transactional_db, s3_server, s3_bucket, token_for, settings):
    """(base URL, headers) of a live server with two organisations' objects."""
    organisation = factories.OrganisationFactory(
        name="Quant Gov", slug=SLUGS["organisation"], id=IDS["organisation"]
    )
    other = factories.OrganisationFactory(name="Elsewhere", slug="elsewhere")
    _organisation_objects(other, s3_server, s3_bucket)
    _organisation_objects(organisation, s3_server, s3_bucket, ids=IDS)
    # Hosts the fuzzer invents (S3 endpoints) are refused by the host policy rather than
    # looked up and connected to: only this machine's servers are reachable.
    settings.STRONGBOX_DEFAULT_ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    headers = {"Authorization": f"Bearer {token_for(organisation, Role.ADMIN)}"}
    return live_server.url, headers


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(case, fuzz_api, fuzz_tally):
    base_url, headers = fuzz_api
    label = f"{case.operation.method.upper()} {case.operation.path}"
    fuzz_tally.operations.add(label)
    fuzz_tally.cases += 1
    response = case.call(base_url=base_url, headers=headers)
    if response.status_code >= 500:
        fuzz_tally.server_errors += 1
    try:
        case.validate_response(
            response, headers=headers, excluded_checks=[positive_data_acceptance]
        )
    except BaseException as exc:
        fuzz_tally.failures.setdefault(f"{label}: {type(exc).__name__}", str(exc)[:2000])
        raise


@pytest.mark.django_db
def test_the_live_server_serves_the_fuzzed_schema(live_server):
    served = requests.get(
        f"{live_server.url}/api/schema/", headers={"Accept": "application/json"}, timeout=30
    )
    assert served.status_code == 200
    assert served.json() == _published_schema()


def test_each_id_parameter_names_the_object_its_operation_means():
    names = {value: name for name, value in IDS.items()}
    operations = CONFIG.projects.default.operations

    def named(label: str) -> dict:
        method, path = label.split(" ", 1)
        operation = SCHEMA[path][method]
        parameters = operations.get_for_operation(operation).parameters
        return {key: names[value] for key, value in parameters.items()}

    assert named("GET /api/backup-destinations/{id}") == {"id": "destination"}
    assert named("DELETE /api/backup-destinations/{id}") == {"id": "spare_destination"}
    assert named("POST /api/backup-destinations/{id}/test") == {"id": "s3_destination"}
    assert named("GET /api/backups/{id}/progress") == {"id": "backup"}
    assert named("DELETE /api/backups/{id}") == {"id": "spare_backup"}
    assert named("DELETE /api/projects/{projectId}") == {"projectId": "spare_project"}
    assert named("GET /api/restores/{id}") == {"id": "restore"}
    assert named("POST /api/backup-alerts/{id}/read") == {"id": "alert"}
    assert named("GET /api/organizations/{id}/evidence") == {"id": "organisation"}
    assert named("GET /api/notification-channels/{id}") == {"id": "channel"}
    assert named("POST /api/notification-channels/{id}/test") == {"id": "channel"}
    assert named("DELETE /api/notification-channels/{id}") == {"id": "spare_channel"}
