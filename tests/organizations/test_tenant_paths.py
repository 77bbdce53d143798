"""Server paths belong to one organisation (issue 15).

The cross-tenant matrix: every path-bearing field (a SQLite database's path, an
environment's files directory, a local destination's directory, libpq's sslcert, sslkey and
sslrootcert) × {own root, the other organisation's root, the app's own data, a granted root,
granted app data}, through the REST API over real HTTP with two organisations side by side,
each with its own admin; then a symlink inside the attacker's own root swapped after it was
saved, at run time, with real backup and restore runs that must leave the victim untouched.
Then grants (``manage.py grant_path``, the admin), the system check and the slug rules.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from backups.models import BackupStatus, CopyStatus
from config.errors import InvalidInput
from destinations.checks import check_destination_paths
from organizations import services
from organizations.checks import check_tenant_paths, check_tenant_root
from organizations.models import Organisation, PathGrant, Role
from organizations.validators import (
    PathNotAllowed,
    organisation_root,
    path_problem,
    tenant_root,
)
from restores.models import RestoreStatus
from restores.services import restore_claim, restore_execute, restore_request
from tests import factories
from tests.backups.helpers import run_backup_now
from tests.fixtures.databases import fill_sqlite, table_checksums
from tests.fixtures.tenants import tenant_dir, tenant_path

# --- the matrix through the REST API ---------------------------------------------------------


def app_sqlite_database() -> Path:
    """The app's own SQLite database: this run's test database, or the embedded profile's
    file when the app database is PostgreSQL."""
    if connection.vendor == "sqlite":
        return Path(connection.settings_dict["NAME"])
    return Path(settings.VAR_DIR) / "strongbox.sqlite3"


def app_data_paths() -> dict[str, Path]:
    return {
        "app sqlite database": app_sqlite_database(),
        "app sqlite wal": Path(f"{app_sqlite_database()}-wal"),
        "artifact root": Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) / "someone",
        "temp dir": Path(settings.STRONGBOX_TMP_DIR) / "strongbox-job-x",
        "wal spool": Path(settings.STRONGBOX_WAL_SPOOL_DIR) / "x",
        "var dir": Path(settings.VAR_DIR) / "secrets.key",
    }


class Api:
    """An organisation admin's view of the REST API, over real HTTP."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def send(self, method: str, path: str, body: dict) -> requests.Response:
        return self.session.request(method, f"{self.base_url}{path}", json=body, timeout=30)


def _sqlite(api, environment, path):
    body = {"name": f"db {uuid.uuid4().hex[:6]}", "engine": "sqlite", "databaseName": path}
    return api.send("POST", f"/api/environments/{environment.id}/databases", body)


def _files(api, environment, path):
    return api.send("PATCH", f"/api/environments/{environment.id}", {"filesPath": path})


def _destination(api, environment, path):
    body = {
        "name": f"disk {uuid.uuid4().hex[:6]}",
        "kind": "local",
        "parameters": {"path": path},
    }
    return api.send("POST", "/api/backup-destinations", body)


def _libpq(option):
    def send(api, environment, path):
        body = {
            "name": f"pg {uuid.uuid4().hex[:6]}",
            "engine": "postgresql",
            "host": "127.0.0.1",
            "port": 5432,
            "databaseName": "app",
            "options": {"sslmode": "verify-full", option: path},
        }
        return api.send("POST", f"/api/environments/{environment.id}/databases", body)

    return send


# field -> (how the API sets it, the field its refusal names, whether the path is a directory)
FIELDS = {
    "sqlite database path": (_sqlite, "databaseName", False),
    "environment files directory": (_files, "filesPath", True),
    "local destination directory": (_destination, "parameters.path", True),
    "libpq sslcert": (_libpq("sslcert"), "options.sslcert", False),
    "libpq sslkey": (_libpq("sslkey"), "options.sslkey", False),
    "libpq sslrootcert": (_libpq("sslrootcert"), "options.sslrootcert", False),
}


def _make(path: Path, directory: bool) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        path.mkdir(exist_ok=True)
    elif not path.exists():
        path.write_bytes(b"")
    return str(path)


@pytest.fixture
def two_tenants(live_server, token_for, tmp_path):
    """Two organisations side by side, each with an environment and its own admin."""
    mine = factories.OrganisationFactory(name="Quant Gov", slug="quant-gov")
    theirs = factories.OrganisationFactory(name="Elsewhere", slug="elsewhere")
    return {
        org.slug: {
            "organisation": org,
            "environment": factories.EnvironmentFactory(project__organisation=org),
            "api": Api(live_server.url, token_for(org, Role.ADMIN)),
        }
        for org in (mine, theirs)
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("field", list(FIELDS))
def test_every_path_field_takes_only_the_organisations_own_or_granted_directories(
    two_tenants, tmp_path, field
):
    send, error_field, directory = FIELDS[field]
    name = "target" if directory else "target.file"

    for me, them in (("quant-gov", "elsewhere"), ("elsewhere", "quant-gov")):
        side = two_tenants[me]
        api, environment, organisation = side["api"], side["environment"], side["organisation"]
        other = two_tenants[them]["organisation"]

        own = send(api, environment, _make(tenant_path(organisation, "own", name), directory))
        assert own.status_code in (200, 201), (field, me, own.text)

        stolen = send(api, environment, _make(tenant_path(other, "own", name), directory))
        assert stolen.status_code == 400, (field, me, stolen.text)
        error = stolen.json()["error"]
        assert error_field in error["fields"]
        # The refusal lists the roots the organisation may use, not the other's.
        assert str(organisation_root(organisation)) in error["message"]
        assert str(organisation_root(other)) + "/own" in error["message"]

        for what, data in app_data_paths().items():
            refused = send(api, environment, str(data))
            assert refused.status_code == 400, (field, me, what, refused.text)
            assert error_field in refused.json()["error"]["fields"]

    organisation = two_tenants["quant-gov"]["organisation"]
    api, environment = two_tenants["quant-gov"]["api"], two_tenants["quant-gov"]["environment"]
    granted_dir = tmp_path / "granted" / "quant-gov"
    services.path_grant_create(organisation=organisation, path=str(granted_dir))
    granted = send(api, environment, _make(granted_dir / name, directory))
    assert granted.status_code in (200, 201), (field, granted.text)
    # Granted to one organisation alone.
    theirs = two_tenants["elsewhere"]
    not_theirs = send(theirs["api"], theirs["environment"], str(granted_dir / name))
    assert not_theirs.status_code == 400

    # Even a grant that reaches app data (a row written past the grant rules) does not make
    # the app's own data usable.
    PathGrant.objects.create(organisation=organisation, path=str(tmp_path))
    PathGrant.objects.create(organisation=organisation, path=str(settings.VAR_DIR))
    for what, data in app_data_paths().items():
        refused = send(api, environment, str(data))
        assert refused.status_code == 400, (field, "granted", what, refused.text)


@pytest.mark.django_db(transaction=True)
def test_a_link_inside_the_own_root_that_leads_to_the_other_organisations_root_is_refused(
    two_tenants,
):
    mine, theirs = two_tenants["quant-gov"], two_tenants["elsewhere"]
    victim = tenant_dir(theirs["organisation"], "files")
    link = tenant_path(mine["organisation"], "innocent")
    link.symlink_to(victim)

    response = _files(mine["api"], mine["environment"], str(link))

    assert response.status_code == 400
    assert str(victim) in response.json()["error"]["message"]


# --- at run time: a symlink swapped after it was saved ----------------------------------------


@pytest.fixture
def attacker(other_organisation):
    """The other organisation, with an environment and its own local destination."""
    environment = factories.EnvironmentFactory(project__organisation=other_organisation)
    factories.DestinationFactory(organisation=other_organisation, name="Their disk")
    return environment


def _swap(link: Path, target) -> None:
    link.unlink()
    link.symlink_to(target)


def _requested_restore(backup):
    return restore_request(enqueue=False, backup=backup, target_type="same")


def _run(restore):
    claimed = restore_claim(restore_id=restore.id)
    assert claimed is not None
    return restore_execute(restore=claimed)


@pytest.mark.django_db
def test_a_sqlite_link_swapped_to_another_organisations_database_is_refused_at_run_time(
    organisation, other_organisation, attacker, make_sqlite_database
):
    victim = make_sqlite_database(organisation)
    fill_sqlite(victim, rows=60)
    before = table_checksums(victim)
    own = make_sqlite_database(other_organisation)
    fill_sqlite(own, rows=10)
    link = tenant_path(other_organisation, "swap", "db.sqlite3")
    link.symlink_to(own.name)
    database = services.database_create(
        environment=attacker, name="Mine", engine="sqlite", database_name=str(link)
    )
    first = run_backup_now(environment=attacker, kind="database", database=database)
    assert first.status == BackupStatus.COMPLETED, first.message
    restore = _requested_restore(first)  # requested while the link still led home

    _swap(link, victim.name)
    refused = run_backup_now(environment=attacker, kind="database", database=database)
    restored = _run(restore)

    assert refused.status == BackupStatus.FAILED
    assert "database_name" in refused.message and "Elsewhere may use" in refused.message
    assert not refused.copies.filter(status=CopyStatus.STORED).exists()
    assert restored.status == RestoreStatus.FAILED
    assert "Elsewhere may use" in restored.message
    assert restored.safety_backup is None
    # The victim's tables are exactly as they were, and nothing was put beside them.
    assert table_checksums(victim) == before
    assert os.listdir(Path(victim.name).parent) == [Path(victim.name).name]
    assert os.readlink(link) == victim.name
    # Asking again now is a 4xx at once.
    with pytest.raises(PathNotAllowed):
        _requested_restore(first)


@pytest.mark.django_db
def test_a_files_link_swapped_to_another_organisations_directory_is_refused_at_run_time(
    organisation, other_organisation, attacker
):
    victim = tenant_dir(organisation, "site")
    (victim / "invoice.txt").write_text("the victim's invoice\n")
    own = tenant_dir(other_organisation, "site")
    (own / "mine.txt").write_text("mine\n")
    link = tenant_path(other_organisation, "uploads")
    link.symlink_to(own)
    services.environment_update(environment=attacker, files_path=str(link))
    first = run_backup_now(environment=attacker, kind="filesystem")
    assert first.status == BackupStatus.COMPLETED, first.message
    restore = _requested_restore(first)

    _swap(link, victim)
    refused = run_backup_now(environment=attacker, kind="filesystem")
    restored = _run(restore)

    assert refused.status == BackupStatus.FAILED
    assert "files_path" in refused.message
    assert restored.status == RestoreStatus.FAILED
    assert sorted(os.listdir(victim)) == ["invoice.txt"]
    assert (victim / "invoice.txt").read_text() == "the victim's invoice\n"
    assert sorted(os.listdir(victim.parent)) == ["site"]


@pytest.mark.django_db
def test_a_destination_link_swapped_to_another_organisations_directory_is_never_written(
    organisation, other_organisation, attacker, make_sqlite_database
):
    victim = tenant_dir(organisation, "vault")
    own = tenant_dir(other_organisation, "vault")
    link = tenant_path(other_organisation, "disk")
    link.symlink_to(own)
    from destinations.services import destination_create

    destination = destination_create(
        organisation=other_organisation,
        name="Linked disk",
        kind="local",
        parameters={"path": str(link)},
    )
    source = make_sqlite_database(other_organisation)
    fill_sqlite(source, rows=5)
    database = services.database_create(
        environment=attacker, name="Source", engine="sqlite", database_name=source.name
    )
    request = {
        "environment": attacker,
        "kind": "database",
        "database": database,
        "destination_ids": [destination.id],
    }
    first = run_backup_now(**request)
    assert first.status == BackupStatus.COMPLETED, first.message
    assert any(path.is_file() for path in own.rglob("*"))

    _swap(link, victim)
    refused = run_backup_now(**request)

    assert refused.status == BackupStatus.FAILED
    assert "parameters.path" in refused.message
    assert list(victim.iterdir()) == []


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["sslcert", "sslkey", "sslrootcert"])
def test_a_libpq_file_link_swapped_to_another_organisations_file_is_refused_at_run_time(
    organisation, other_organisation, attacker, option
):
    victim = tenant_path(organisation, "client.key")
    victim.write_text("the victim's key\n")
    own = tenant_path(other_organisation, "client.key")
    own.write_text("mine\n")
    link = tenant_path(other_organisation, "tls", option)
    link.symlink_to(own)
    database = services.database_create(
        environment=attacker,
        name="Remote",
        engine="postgresql",
        host="127.0.0.1",
        port=5432,
        database_name="app",
        options={"sslmode": "verify-full", option: str(link)},
    )

    _swap(link, victim)
    refused = run_backup_now(environment=attacker, kind="database", database=database)

    assert refused.status == BackupStatus.FAILED
    assert f"options.{option}" in refused.message
    assert "could not start" in refused.message


# --- grants -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_grant_path_grants_lists_and_revokes_a_directory(organisation, tmp_path, capsys):
    share = tmp_path / "share"

    call_command("grant_path", "quant-gov", str(share), "--note", "their NFS share")
    call_command("grant_path", "quant-gov", "--list")
    listed = capsys.readouterr().out
    assert f"Granted {share} to quant-gov" in listed
    assert str(organisation_root(organisation)) in listed and "their NFS share" in listed
    assert path_problem(organisation, str(share / "db.sqlite3")) is None

    call_command("grant_path", "quant-gov", str(share), "--revoke")
    assert not PathGrant.objects.exists()
    assert path_problem(organisation, str(share / "db.sqlite3")) is not None
    with pytest.raises(CommandError, match="no grant"):
        call_command("grant_path", "quant-gov", str(share), "--revoke")


@pytest.mark.django_db
def test_grants_never_overlap_another_organisation_the_tenant_root_or_app_data(
    organisation, other_organisation, tmp_path
):
    services.path_grant_create(organisation=other_organisation, path=str(tmp_path / "theirs"))
    refused = {
        "inside another's grant": tmp_path / "theirs" / "sub",
        "around another's grant": tmp_path,
        "another's own root": tenant_root() / "elsewhere",
        "around the tenant root": tenant_root().parent,
        "inside the tenant root": tenant_root() / "not-yet-an-organisation",
        "the artifact root": Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT),
        "the temp dir": Path(settings.STRONGBOX_TMP_DIR) / "x",
        "the app's database": app_sqlite_database(),
        "the var dir": Path(settings.VAR_DIR),
        "the root directory": Path("/"),
        "a relative path": Path("relative"),
    }
    for what, path in refused.items():
        with pytest.raises(InvalidInput) as raised:
            services.path_grant_create(organisation=organisation, path=str(path))
        assert list(raised.value.fields) == ["path"], what
        with pytest.raises(CommandError):
            call_command("grant_path", "quant-gov", str(path))
    assert not PathGrant.objects.filter(organisation=organisation).exists()

    services.path_grant_create(organisation=organisation, path=str(tmp_path.parent / "ours"))
    assert PathGrant.objects.filter(organisation=organisation).count() == 1


@pytest.fixture
def root_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


@pytest.mark.django_db
def test_only_superusers_manage_grants_in_the_admin(client, organisation, tmp_path):
    staff = get_user_model().objects.create_user("staff", "s@example.com", "pw", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/organizations/pathgrant/").status_code == 403
    form = {"organisation": organisation.pk, "path": str(tmp_path / "x"), "note": ""}
    assert client.post("/admin/organizations/pathgrant/add/", form).status_code == 403
    assert not PathGrant.objects.exists()


@pytest.mark.django_db
def test_the_admin_grants_a_directory_and_refuses_an_overlapping_one(
    root_client, organisation, other_organisation, tmp_path
):
    url = "/admin/organizations/pathgrant/add/"
    ok = root_client.post(url, {"organisation": organisation.pk, "path": str(tmp_path / "a")})
    assert ok.status_code == 302
    grant = PathGrant.objects.get()
    assert (grant.path, grant.created_by.username) == (str(tmp_path / "a"), "root")

    overlapping = {"organisation": other_organisation.pk, "path": str(tmp_path / "a" / "b")}
    refused = root_client.post(url, overlapping)
    assert refused.status_code == 200
    assert "granted to Quant Gov" in refused.content.decode()
    app_data = {"organisation": organisation.pk, "path": str(settings.STRONGBOX_TMP_DIR)}
    assert "app&#x27;s own data" in root_client.post(url, app_data).content.decode()
    assert PathGrant.objects.count() == 1


# --- the system check -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_check_names_each_saved_row_that_breaks_the_rules(
    organisation, other_organisation, environment, tmp_path
):
    theirs = str(tenant_path(other_organisation, "theirs.sqlite3"))
    stolen = factories.DatabaseFactory(environment=environment, name="Stolen", database_name=theirs)
    fine = factories.DatabaseFactory(environment=environment, name="Fine")
    environment.files_path = "/etc"
    environment.save()
    factories.DestinationFactory(
        organisation=organisation, name="Spool", config={"path": str(settings.STRONGBOX_TMP_DIR)}
    )
    factories.DestinationFactory(organisation=organisation, name="Built-in")

    warnings = check_tenant_paths(databases=["default"]) + check_destination_paths(
        databases=["default"]
    )

    texts = sorted(warning.msg for warning in warnings)
    assert len(texts) == 3, texts
    assert {warning.id for warning in warnings} == {"strongbox.W120"}
    assert {warning.obj for warning in warnings} >= {stolen}
    assert any("Stolen" in t and "database_name" in t and "Quant Gov" in t for t in texts)
    assert any("files_path" in t and "/etc" in t for t in texts)
    assert any("Spool" in t and "app's own data" in t for t in texts)
    assert not any(str(fine.pk) in t for t in texts)

    # manage.py check shows them (as warnings: the command still succeeds).
    call_command("check", "--database", "default")


@pytest.mark.django_db
def test_manage_py_check_prints_the_rows(environment, capsys):
    factories.DatabaseFactory(environment=environment, name="Old", database_name="/srv/old.db")
    call_command("check")
    captured = capsys.readouterr()
    assert "strongbox.W120" in captured.out + captured.err


# --- slugs ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_two_organisations_roots_never_nest(organisation):
    short = factories.OrganisationFactory(name="A", slug="a")
    longer = factories.OrganisationFactory(name="A-B", slug="a-b")
    assert organisation_root(short).parent == organisation_root(longer).parent == tenant_root()
    assert path_problem(short, str(organisation_root(longer) / "x.db")) is not None
    # A slug saved past validation (empty, or with a slash) gives no root at all, never the
    # tenant root itself or a parent.
    for odd in ["", "../escape", "x/y", "."]:
        Organisation.objects.filter(pk=short.pk).update(slug=odd)
        short.refresh_from_db()
        assert organisation_root(short) is None
        assert path_problem(short, str(tenant_root() / "quant-gov" / "x.db")) is not None


@pytest.mark.django_db
def test_a_slug_whose_directory_holds_files_is_refused_in_the_admin(root_client, organisation):
    left_behind = tenant_dir("former", "shop")
    (left_behind / "orders.sqlite3").write_text("a former organisation's data")
    url = f"/admin/organizations/organisation/{organisation.pk}/change/"
    form = {
        "name": "Quant Gov",
        "slug": "former",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }

    refused = root_client.post(url, form)

    assert refused.status_code == 200
    assert "already holds files" in refused.content.decode()
    organisation.refresh_from_db()
    assert organisation.slug == "quant-gov"
    created = root_client.post(
        "/admin/organizations/organisation/add/",
        {**form, "name": "Newcomer"},
    )
    assert created.status_code == 200 and not Organisation.objects.filter(slug="former").exists()
    renamed = root_client.post(url, {**form, "slug": "quant-gov-2"})
    assert renamed.status_code == 302
    organisation.refresh_from_db()
    assert organisation.slug == "quant-gov-2"


def test_a_tenant_root_that_overlaps_app_data_is_a_configuration_error(settings):
    for clash in [settings.VAR_DIR, settings.BASE_DIR, settings.STRONGBOX_TMP_DIR, Path("/")]:
        settings.STRONGBOX_TENANT_ROOT = clash
        assert [error.id for error in check_tenant_root()] == ["strongbox.E120"], clash
    settings.STRONGBOX_TENANT_ROOT = Path(settings.VAR_DIR) / "tenants"
    assert check_tenant_root() == []
