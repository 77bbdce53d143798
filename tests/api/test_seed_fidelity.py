"""Seeds 000, 001 and 002 answer exactly as their documents say (issue 17), for the shapes
customers have: an environment with one database, one with several (and files), and another
organisation side by side whose backups never appear.

Each body is compared with the seed's example (same keys, same JSON types) and validated
against the OpenAPI schema with every object closed, so the schema and the answers agree.
"""

import copy
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator

from backups.models import Backup, BackupKind, BackupMethod, BackupStatus, CopyStatus
from backups.services import backup_request
from organizations.models import Role
from tests import factories
from tests.api import test_seed000, test_seed001, test_seed002
from tests.api.shapes import assert_same_shape
from tests.backups.helpers import make_files_tree, restore_database_artifact, run_backup_now
from tests.fixtures.databases import fill_sqlite, table_checksums
from tests.fixtures.tenants import unique_tenant_dir

T0 = datetime(2025, 9, 19, 21, 50, 27, 317000, tzinfo=UTC)
SEED001_STATUSES = {
    "scheduled",
    "in-progress",
    "completed",
    "aborting",
    "aborted",
    "failed",
    "not-supported",
}
# Statuses whose backup stored nothing: no size recorded.
STORED_NOTHING = {
    BackupStatus.SCHEDULED,
    BackupStatus.IN_PROGRESS,
    BackupStatus.ABORTING,
    BackupStatus.ABORTED,
    BackupStatus.FAILED,
    BackupStatus.NOT_SUPPORTED,
}
# The seed's backupId, ``quant-gov-dashboard-staging-2025-09-19T21-50-27-145Z``.
SEED000_NAME = r"^quant-gov-dashboard-{env}-\d{{4}}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{{3}}Z$"


def seed000_url(organisation: str, environment: str, kind: str) -> str:
    return (
        f"/api/v3/organizations/{organisation}/applications/dashboard"
        f"/environments/{environment}/backups/{kind}"
    )


def seed001_url(destination) -> str:
    return f"/v1/backup-destinations/{destination.id}/backups"


SEED002_URL = "/v1/database-backups"


def name_from_created_at(prefix: str, created_at: str) -> str:
    """Seed 000's backupId: the createdAt with ':' and '.' as '-'."""
    return f"{prefix}-{created_at.replace(':', '-').replace('.', '-')}"


# --- the organisations -----------------------------------------------------------------------


@pytest.fixture
def staging_db(environment):
    """The one database of quant-gov/dashboard/staging."""
    return factories.DatabaseFactory(
        environment=environment, name="Dashboard DB", slug="main", engine="mysql", version="10.11"
    )


@pytest.fixture
def production(project):
    """quant-gov/dashboard/production: three databases and a files directory."""
    environment = factories.EnvironmentFactory(
        project=project,
        name="Production",
        slug="production",
        files_path=str(unique_tenant_dir("quant-gov", "files")),
    )
    for slug, engine, version in (
        ("users", "postgresql", "16.4"),
        ("orders", "mysql", "10.11"),
        ("cache", "sqlite", "3.45.1"),
    ):
        factories.DatabaseFactory(
            environment=environment, name=slug.title(), slug=slug, engine=engine, version=version
        )
    return environment


@pytest.fixture
def second_destination(organisation):
    return factories.DestinationFactory(organisation=organisation, name="Offsite", is_default=False)


@pytest.fixture
def elsewhere(other_organisation):
    """The other organisation, with the same project and environment slugs as quant-gov."""
    project = factories.ProjectFactory(
        organisation=other_organisation, name="Dashboard", slug="dashboard"
    )
    environment = factories.EnvironmentFactory(project=project, name="Staging", slug="staging")
    database = factories.DatabaseFactory(
        environment=environment, slug="main", engine="postgresql", version="15.4"
    )
    destination = factories.DestinationFactory(organisation=other_organisation, name="Theirs")
    backups = [
        _backup(environment, destination, database=database, minutes=1),
        _backup(environment, destination, kind=BackupKind.FULL, minutes=2),
        _backup(environment, destination, kind=BackupKind.FILESYSTEM, minutes=3),
    ]
    return {"environment": environment, "destination": destination, "backups": backups}


def _backup(
    environment,
    destination,
    *,
    kind=BackupKind.DATABASE,
    database=None,
    status=BackupStatus.COMPLETED,
    minutes=0,
    copy_status=None,
    **fields,
):
    """A backup as a run leaves it, with its copy in ``destination`` (deleted with the backup,
    as ``backup_delete_artifacts`` leaves it; still stored while it is being deleted)."""
    if copy_status is None:
        copy_status = CopyStatus.DELETED if status == BackupStatus.DELETED else CopyStatus.STORED
    created_at = T0 + timedelta(minutes=minutes)
    if kind == BackupKind.FULL:
        databases = environment.databases.order_by("name")
        fields.setdefault("engine_version", ", ".join(f"{d.slug}:{d.version}" for d in databases))
        fields.setdefault("engine", "postgresql")
    elif kind == BackupKind.FILESYSTEM:
        fields.setdefault("engine", "files")
        fields.setdefault("engine_version", "")
        fields.setdefault("method", BackupMethod.ARCHIVE)
    elif kind == BackupKind.BASE:
        fields.setdefault("method", BackupMethod.PHYSICAL)
    if database is not None:
        fields.setdefault("engine", database.engine)
        fields.setdefault("engine_version", database.version)
    if status in STORED_NOTHING:
        fields.setdefault("size", None)
    if status in (BackupStatus.SCHEDULED, BackupStatus.IN_PROGRESS, BackupStatus.ABORTING):
        fields.setdefault("completed_at", None)
    backup = factories.BackupFactory(
        environment=environment,
        database=database,
        kind=kind,
        status=status,
        created_at=created_at,
        expires_at=created_at + timedelta(days=7),
        schedule_rules=[{"interval": "weekly", "minute": [30], "hour": [18], "day": [4]}],
        **fields,
    )
    factories.BackupCopyFactory(backup=backup, destination=destination, status=copy_status)
    return backup


@pytest.fixture
def landscape(environment, staging_db, production, destination, second_destination, elsewhere):
    """Backups of every kind and status in both environments, all in ``destination``.

    A database has one active backup at most, so two of the three active statuses are on
    production's databases.
    """
    made = {"staging": {}, "production": {}, "elsewhere": elsewhere["backups"]}
    active_on_production = {
        BackupStatus.IN_PROGRESS: production.databases.get(slug="users"),
        BackupStatus.ABORTING: production.databases.get(slug="orders"),
    }
    for minute, status in enumerate(BackupStatus.values):
        if status in active_on_production:
            made["production"][status] = _backup(
                production,
                destination,
                database=active_on_production[status],
                status=status,
                minutes=minute,
            )
            continue
        made["staging"][status] = _backup(
            environment, destination, database=staging_db, status=status, minutes=minute
        )
    made["staging"]["full"] = _backup(environment, destination, kind=BackupKind.FULL, minutes=20)
    made["staging"]["filesystem"] = _backup(
        environment, destination, kind=BackupKind.FILESYSTEM, minutes=21
    )
    for minute, database in enumerate(production.databases.order_by("name"), start=30):
        made["production"][database.slug] = _backup(
            production, destination, database=database, minutes=minute
        )
    users = production.databases.get(slug="users")
    made["production"]["base"] = _backup(
        production, destination, kind=BackupKind.BASE, database=users, minutes=40
    )
    made["production"]["full"] = _backup(production, destination, kind=BackupKind.FULL, minutes=41)
    made["production"]["filesystem"] = _backup(
        production, destination, kind=BackupKind.FILESYSTEM, minutes=42
    )
    # Removed from ``destination`` by hand, still held in the second one.
    moved = _backup(
        production, destination, database=users, minutes=43, copy_status=CopyStatus.DELETED
    )
    factories.BackupCopyFactory(backup=moved, destination=second_destination)
    made["production"]["moved"] = moved
    return made


# --- the schema ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


def _json_schema(schema):
    """The OpenAPI 3.0 schema as JSON Schema, with every object closed.

    ``nullable`` becomes a ``null`` type (beside a ``$ref`` in ``allOf``, drf-spectacular's
    way to say a nullable object, it means "this or null", as schemathesis reads it too),
    and ``additionalProperties: false`` goes on every object: no key beyond the schema's.
    """
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _json_schema(value) for key, value in schema.items()}
    if converted.get("type") == "object" and "properties" in converted:
        converted.setdefault("additionalProperties", False)
    if converted.pop("nullable", False):
        if "type" in converted and "enum" not in converted:
            converted["type"] = [converted["type"], "null"]
        else:
            converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


def assert_matches_schema(openapi, path: str, body) -> None:
    response = openapi["paths"][path]["get"]["responses"]["200"]
    schema = {
        **response["content"]["application/json"]["schema"],
        "components": _json_schema(copy.deepcopy(openapi["components"])),
    }
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(body)
    ]
    assert errors == []


SEED000_PATH = (
    "/api/v3/organizations/{organisation}/applications/{application}/environments/{environment}"
    "/backups/{type}"
)
SEED001_PATH = "/v1/backup-destinations/{backupDestinationId}/backups"


def _component(openapi, name):
    return openapi["components"]["schemas"][name]


def _ref_name(prop) -> str:
    ref = prop.get("$ref") or prop["allOf"][0]["$ref"]
    return ref.rsplit("/", 1)[1]


def test_the_schema_states_the_seeds_types_nullability_and_enums(openapi):
    seed000 = _component(openapi, "Seed000Backup")["properties"]
    assert seed000["size"]["type"] == "integer"
    assert not seed000["size"].get("nullable")

    seed001 = _component(openapi, "Seed001Backup")["properties"]
    assert set(_component(openapi, _ref_name(seed001["status"]))["enum"]) == SEED001_STATUSES
    assert seed001["addon"]["nullable"] is True
    assert seed001["expiredBy"]["type"] == "number"
    config = _component(openapi, "Seed001Config")["properties"]
    assert config["addonVersion"] == {**config["addonVersion"], "type": "string", "nullable": True}
    addon_types = _component(openapi, _ref_name(config["addonType"]))["enum"]
    assert {"full", "filesystem", "postgresql", "mysql"} <= set(addon_types)
    assert "files" not in addon_types
    assert config["size"]["type"] == "string"

    seed002 = _component(openapi, "Seed002DatabaseBackup")["properties"]
    assert seed002["instance_id"]["format"] == "uuid"
    assert not seed002["instance_id"].get("nullable")
    assert "ACTIVE" not in _component(openapi, _ref_name(seed002["status"]))["enum"]
    (status,) = [
        p for p in openapi["paths"][SEED002_URL]["get"]["parameters"] if p["name"] == "status"
    ]
    assert "ACTIVE" in status["schema"]["enum"]


# --- seed 000 --------------------------------------------------------------------------------


@pytest.mark.parametrize("environment_slug", ["staging", "production"])
@pytest.mark.parametrize("kind", ["database", "filesystem"])
def test_seed_000_answers_in_the_seeds_shape_and_the_schema(
    client_for, organisation, landscape, openapi, environment_slug, kind
):
    response = client_for(organisation, Role.VIEWER).get(
        seed000_url("quant-gov", environment_slug, kind), {"limit": 100}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["backups"]
    assert_same_shape(body, test_seed000.SEED_EXAMPLE, nullable=("$.nextToken",))
    assert_matches_schema(openapi, SEED000_PATH, body)
    mine = {b.name for b in landscape[environment_slug].values()}
    assert {item["backupId"] for item in body["backups"]} <= mine


def test_seed_000_shows_size_0_for_a_backup_that_stored_nothing(
    client_for, organisation, landscape
):
    client = client_for(organisation, Role.VIEWER)
    by_status = {}
    for environment_slug in ("production", "staging"):
        url = seed000_url("quant-gov", environment_slug, "database")
        for item in client.get(url, {"limit": 100}).json()["backups"]:
            by_status[item["status"]] = item
    for status in STORED_NOTHING:
        assert by_status[status]["size"] == 0, status
        assert by_status[status]["sizeFormatted"] == "0.00 B", status
    assert by_status["completed"]["size"] == 1945663


def test_seed_000_names_a_single_database_environments_backup_exactly_as_the_seed(
    client_for, organisation, environment, staging_db, destination
):
    (backup,) = backup_request(environment=environment, kind="database")
    body = (
        client_for(organisation, Role.VIEWER)
        .get(seed000_url("quant-gov", "staging", "database"))
        .json()
    )
    (item,) = body["backups"]
    assert re.match(SEED000_NAME.format(env="staging"), item["backupId"])
    assert item["backupId"] == name_from_created_at(
        "quant-gov-dashboard-staging", item["createdAt"]
    )
    assert item["backupId"] == backup.name
    assert item["size"] == 0, "scheduled: nothing stored yet"


def test_seed_000_suffixes_the_database_slug_only_when_one_trigger_backs_up_several(
    client_for, organisation, production, destination
):
    several = backup_request(environment=production, kind="database")
    Backup.objects.filter(pk__in=[b.pk for b in several]).update(status=BackupStatus.COMPLETED)
    orders = production.databases.get(slug="orders")
    (alone,) = backup_request(environment=production, kind="database", database=orders)
    client = client_for(organisation, Role.VIEWER)
    items = client.get(seed000_url("quant-gov", "production", "database")).json()["backups"]
    by_name = {item["backupId"]: item for item in items}
    prefix = "quant-gov-dashboard-production"

    assert sorted(by_name) == sorted([b.name for b in several] + [alone.name])
    for backup in several:
        stamp = name_from_created_at(prefix, by_name[backup.name]["createdAt"])
        assert backup.name == f"{stamp}-{backup.database.slug}"
    assert alone.name == name_from_created_at(prefix, by_name[alone.name]["createdAt"])


def test_seed_000_names_full_and_files_backups_by_their_kind(
    client_for, organisation, production, destination
):
    (full,) = backup_request(environment=production, kind="full")
    (files,) = backup_request(environment=production, kind="filesystem")
    client = client_for(organisation, Role.VIEWER)
    items = client.get(seed000_url("quant-gov", "production", "filesystem")).json()["backups"]
    by_name = {item["backupId"]: item for item in items}
    prefix = "quant-gov-dashboard-production"
    assert by_name[full.name]["backupId"].endswith("Z-full")
    assert full.name == name_from_created_at(prefix, by_name[full.name]["createdAt"]) + "-full"
    assert files.name == (
        name_from_created_at(prefix, by_name[files.name]["createdAt"]) + "-filesystem"
    )


def test_seed_000_never_shows_the_other_organisations_backups(
    client_for, organisation, other_organisation, landscape, elsewhere
):
    theirs = {b.name for b in elsewhere["backups"]}
    client = client_for(organisation, Role.VIEWER)
    for environment_slug in ("staging", "production"):
        for kind in ("database", "filesystem"):
            url = seed000_url("quant-gov", environment_slug, kind)
            names = {b["backupId"] for b in client.get(url, {"limit": 100}).json()["backups"]}
            assert names and not names & theirs
    # Their token on our path, and ours on theirs: the same slugs below, still a 404.
    outsider = client_for(other_organisation, Role.ADMIN)
    assert outsider.get(seed000_url("quant-gov", "staging", "database")).status_code == 404
    assert client.get(seed000_url("elsewhere", "staging", "database")).status_code == 404
    own = outsider.get(seed000_url("elsewhere", "staging", "filesystem")).json()["backups"]
    assert {b["backupId"] for b in own} == {
        b.name for b in elsewhere["backups"] if b.kind != BackupKind.DATABASE
    }


# --- seed 001 --------------------------------------------------------------------------------

SEED001_NULLABLE = (
    "$.data[].addon",
    "$.data[].config.addonVersion",
    "$.data[].completedAt",
)


def _seed001(client, destination, **params):
    response = client.get(seed001_url(destination), {"per_page": 100, **params})
    assert response.status_code == 200
    return response


def test_seed_001_answers_in_the_seeds_shape_and_the_schema(
    client_for, organisation, landscape, destination, openapi
):
    body = _seed001(client_for(organisation, Role.VIEWER), destination).json()
    assert_same_shape(body, test_seed001.SEED_EXAMPLE, nullable=SEED001_NULLABLE)
    assert_matches_schema(openapi, SEED001_PATH, body)
    assert {item["status"] for item in body["data"]} == SEED001_STATUSES


def test_seed_001_leaves_out_backups_being_deleted_deleted_or_no_longer_held_there(
    client_for, organisation, landscape, destination, second_destination
):
    client = client_for(organisation, Role.VIEWER)
    listed = {item["id"] for item in _seed001(client, destination).json()["data"]}
    gone = [
        landscape["staging"][BackupStatus.DELETING],
        landscape["staging"][BackupStatus.DELETED],
        landscape["production"]["moved"],
    ]
    expected = {str(b.id) for env in ("staging", "production") for b in landscape[env].values()} - {
        str(b.id) for b in gone
    }
    assert listed == expected
    elsewhere = {item["id"] for item in _seed001(client, second_destination).json()["data"]}
    assert elsewhere == {str(landscape["production"]["moved"].id)}


def test_seed_001_pages_stay_full_around_the_backups_it_leaves_out(
    client_for, organisation, landscape, destination
):
    client = client_for(organisation, Role.VIEWER)
    everything = [item["id"] for item in _seed001(client, destination).json()["data"]]
    pages, query = [], {"per_page": 4}
    while True:
        body = client.get(seed001_url(destination), query).json()
        pages.append([item["id"] for item in body["data"]])
        if not body["pagination"]["hasNextPage"]:
            break
        query = {"per_page": 4, "cursor": body["pagination"]["cursor"]}
    assert sum(pages, []) == everything
    assert all(len(page) == 4 for page in pages[:-1])
    numbered = [
        [item["id"] for item in client.get(seed001_url(destination), q).json()["data"]]
        for q in ({"per_page": 4, "page": n} for n in range(1, len(pages) + 1))
    ]
    assert numbered == pages


def test_seed_001_describes_each_kind_as_the_seed_does(
    client_for, organisation, landscape, destination, production
):
    body = _seed001(client_for(organisation, Role.VIEWER), destination).json()
    items = {item["id"]: item for item in body["data"]}
    for env in ("staging", "production"):
        full = items[str(landscape[env]["full"].id)]
        assert full["addon"] is None
        assert full["config"]["addonType"] == "full"
        assert full["config"]["addonVersion"] is None
        files = items[str(landscape[env]["filesystem"].id)]
        assert files["addon"] is None
        assert files["config"]["addonType"] == "filesystem"
        assert files["config"]["addonVersion"] is None
    for database in production.databases.all():
        item = items[str(landscape["production"][database.slug].id)]
        assert item["addon"] == {"id": str(database.id), "name": database.name}
        assert item["config"]["addonType"] == database.engine
        assert item["config"]["addonVersion"] == database.version
    base = items[str(landscape["production"]["base"].id)]
    assert base["addon"]["name"] == "Users"
    assert base["config"]["addonVersion"] == "16.4"
    assert all(item["config"]["size"].isdigit() for item in items.values())


def test_seed_001_expired_by_is_a_json_number_of_epoch_milliseconds(
    client_for, organisation, landscape, destination
):
    response = _seed001(client_for(organisation, Role.VIEWER), destination)
    raw = json.loads(response.content)
    for item in raw["data"]:
        assert type(item["expiredBy"]) in (int, float), item["expiredBy"]
    backup = landscape["staging"][BackupStatus.COMPLETED]
    (item,) = [item for item in raw["data"] if item["id"] == str(backup.id)]
    assert item["expiredBy"] == backup.expires_at.timestamp() * 1000
    assert re.search(rb'"expiredBy":\s*\d+(\.\d+)?[,}]', response.content)


def test_seed_001_never_shows_the_other_organisations_backups(
    client_for, organisation, other_organisation, landscape, destination, elsewhere
):
    client = client_for(organisation, Role.VIEWER)
    ids = {item["id"] for item in _seed001(client, destination).json()["data"]}
    assert not ids & {str(b.id) for b in elsewhere["backups"]}
    assert client.get(seed001_url(elsewhere["destination"])).status_code == 404
    outsider = client_for(other_organisation, Role.VIEWER)
    assert outsider.get(seed001_url(destination)).status_code == 404
    theirs = _seed001(outsider, elsewhere["destination"]).json()["data"]
    assert {item["id"] for item in theirs} == {str(b.id) for b in elsewhere["backups"]}


# --- seed 002 --------------------------------------------------------------------------------

SEED002_NULLABLE = (
    "$.database_backups[].parent_id",
    "$.links.previous",
    "$.links.next",
    "$.meta.marker",
)


def _database_backups(landscape) -> dict:
    """The landscape's backups of one database each: what seed 002 lists."""
    return {
        str(b.id): b
        for env in ("staging", "production")
        for b in landscape[env].values()
        if b.kind in (BackupKind.DATABASE, BackupKind.BASE)
    }


def test_seed_002_answers_in_the_seeds_shape_and_the_schema(
    client_for, organisation, landscape, openapi
):
    body = client_for(organisation, Role.VIEWER).get(SEED002_URL, {"limit": 100}).json()
    assert_same_shape(body, test_seed002.SEED_EXAMPLE, nullable=SEED002_NULLABLE)
    assert_matches_schema(openapi, SEED002_URL, body)


def test_seed_002_lists_database_backups_only_each_with_its_database(
    client_for, organisation, landscape
):
    body = client_for(organisation, Role.VIEWER).get(SEED002_URL, {"limit": 100}).json()
    expected = _database_backups(landscape)
    assert {item["id"] for item in body["database_backups"]} == set(expected)
    assert body["meta"]["total"] == len(expected)
    for item in body["database_backups"]:
        backup = expected[item["id"]]
        assert item["instance_id"] == str(backup.database_id)
        assert item["datastore"]["type"] == backup.database.engine
        assert item["datastore"]["version"] == backup.database.version


def test_seed_002_pages_walk_database_backups_only(client_for, organisation, landscape):
    client = client_for(organisation, Role.VIEWER)
    seen, url = [], f"{SEED002_URL}?limit=4"
    while url:
        body = client.get(url).json()
        assert len(body["database_backups"]) == 4 or not body["meta"]["has_more"]
        seen += [item["id"] for item in body["database_backups"]]
        url = body["links"]["next"]
    assert sorted(seen) == sorted(_database_backups(landscape))
    full = landscape["production"]["full"]
    response = client.get(SEED002_URL, {"marker": str(full.id)})
    assert response.status_code == 400, "a full backup is not in this list"
    assert "marker" in response.json()["error"]["message"]


@pytest.mark.parametrize("value", ["ACTIVE", "active", "COMPLETED", "completed"])
def test_seed_002_accepts_the_seeds_active_as_completed(client_for, organisation, landscape, value):
    body = (
        client_for(organisation, Role.VIEWER)
        .get(SEED002_URL, {"status": value, "limit": 100})
        .json()
    )
    completed = {key for key, b in _database_backups(landscape).items() if b.status == "completed"}
    assert {item["id"] for item in body["database_backups"]} == completed
    assert {item["status"] for item in body["database_backups"]} == {"COMPLETED"}
    assert body["meta"]["total"] == len(completed)


def test_seed_002_never_shows_the_other_organisations_backups(
    client_for, organisation, other_organisation, landscape, elsewhere
):
    theirs = {str(b.id) for b in elsewhere["backups"]}
    body = client_for(organisation, Role.VIEWER).get(SEED002_URL, {"limit": 100}).json()
    assert not {item["id"] for item in body["database_backups"]} & theirs
    outsider = client_for(other_organisation, Role.VIEWER)
    own = outsider.get(SEED002_URL, {"limit": 100}).json()
    (database_backup,) = [b for b in elsewhere["backups"] if b.kind == BackupKind.DATABASE]
    assert [item["id"] for item in own["database_backups"]] == [str(database_backup.id)]
    assert own["meta"]["total"] == 1
    mine = landscape["staging"][BackupStatus.COMPLETED]
    assert outsider.get(SEED002_URL, {"marker": str(mine.id)}).status_code == 400


# --- real backups, listed and restored from what the lists say --------------------------------


def test_real_backups_of_both_environments_list_as_the_seeds_say_and_restore(
    client_for, organisation, project, destination, make_sqlite_database, openapi
):
    single = factories.EnvironmentFactory(project=project, name="Solo", slug="solo")
    solo_spec = make_sqlite_database(organisation)
    fill_sqlite(solo_spec, rows=50)
    solo = factories.DatabaseFactory(
        environment=single, slug="solo", engine="sqlite", database_name=solo_spec.name
    )
    files_dir = make_files_tree(unique_tenant_dir(organisation, "tree"))
    several = factories.EnvironmentFactory(
        project=project, name="Many", slug="many", files_path=str(files_dir)
    )
    for slug in ("alpha", "beta"):
        spec = make_sqlite_database(organisation)
        fill_sqlite(spec, rows=20)
        factories.DatabaseFactory(
            environment=several, slug=slug, engine="sqlite", database_name=spec.name
        )
    dump = run_backup_now(environment=single, kind="database")
    full = run_backup_now(environment=several, kind="full")
    assert (dump.status, full.status) == ("completed", "completed"), (dump.message, full.message)
    client = client_for(organisation, Role.VIEWER)

    (item,) = client.get(seed000_url("quant-gov", "solo", "database")).json()["backups"]
    assert item["backupId"] == name_from_created_at("quant-gov-dashboard-solo", item["createdAt"])
    assert item["size"] == dump.size > 0
    body001 = _seed001(client, destination).json()
    assert_matches_schema(openapi, SEED001_PATH, body001)
    listed = {entry["id"]: entry for entry in body001["data"]}
    assert listed[str(full.id)]["addon"] is None
    assert listed[str(full.id)]["config"]["addonType"] == "full"
    assert listed[str(full.id)]["config"]["addonVersion"] is None
    assert "," in full.engine_version, "a full backup records every database's version"
    assert listed[str(dump.id)]["config"]["addonVersion"] == dump.engine_version
    body002 = client.get(SEED002_URL).json()
    assert_matches_schema(openapi, SEED002_URL, body002)
    (entry,) = body002["database_backups"]
    assert (entry["id"], entry["instance_id"]) == (str(dump.id), str(solo.id))

    # What the lists name is the artifact: restore it and compare the data.
    copy_key = item["s3Key"]
    (stored,) = dump.copies.filter(key=copy_key)
    target = make_sqlite_database(organisation)
    restore_database_artifact(dump, target, stored)
    assert table_checksums(target) == table_checksums(solo_spec)
