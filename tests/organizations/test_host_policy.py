"""Host policies: which hosts an organisation's databases, S3 endpoints and webhooks may reach.

The matching is pure and tested as such; saving a host goes through the API and the admin;
the policy itself is set by the operator (admin for superusers, ``manage.py host_policy``).
Connect-time checks against real servers live beside their kinds (tests/backups,
tests/destinations, tests/alerts).
"""

import ipaddress
import socket
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from organizations.hostpolicy import (
    HostNotAllowed,
    HostUnresolved,
    address_allowed,
    allowed_addresses,
    entry_problem,
    host_allowed,
    parse_rules,
    rules_from,
    rules_problem,
)
from organizations.models import Database, HostPolicy
from organizations.services import host_policy_set
from tests import factories


def ip(text):
    return ipaddress.ip_address(text)


# --- matching, pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("10.1.2.3", True),
        ("10.255.255.255", True),
        ("11.0.0.1", False),
        ("192.168.7.9", True),
        ("192.168.8.1", False),
        ("2001:db8::17", True),
        ("2001:db9::1", False),
        ("::ffff:10.9.9.9", True),  # IPv4-mapped IPv6 is the IPv4 address it reaches
        ("::ffff:11.0.0.1", False),
        ("64:ff9b::a00:1", True),  # NAT64 of 10.0.0.1
    ],
)
def test_networks_match_v4_and_v6_addresses_and_embedded_ipv4(address, allowed):
    rules = parse_rules(["10.0.0.0/8", "192.168.7.0/24", "2001:db8::/32"])
    assert address_allowed(rules, ip(address)) is allowed


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "100.100.100.200",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "::",
        "224.0.0.1",
        "ff02::1",
    ],
)
def test_metadata_link_local_unspecified_and_multicast_addresses_are_always_refused(address):
    for rules in (parse_rules([]), parse_rules(["*"]), parse_rules(["0.0.0.0/0", "::/0"])):
        assert not address_allowed(rules, ip(address))
        assert not host_allowed(rules, address, [ip(address)])


def test_an_empty_policy_allows_any_other_host():
    rules = parse_rules([])
    assert rules.any_host
    assert host_allowed(rules, "db.example.com", [ip("203.0.113.5")])
    assert host_allowed(rules, "127.0.0.1", [ip("127.0.0.1")])


def test_a_host_name_entry_matches_exactly_and_a_wildcard_matches_names_below_it():
    rules = parse_rules(["db.example.com", "*.corp.example"])
    public = [ip("203.0.113.5")]
    assert host_allowed(rules, "db.example.com", public)
    assert host_allowed(rules, "DB.Example.Com.", public)
    assert not host_allowed(rules, "other.example.com", public)
    assert not host_allowed(rules, "db.example.com.evil.test", public)
    assert host_allowed(rules, "pg.corp.example", public)
    assert host_allowed(rules, "a.b.corp.example", public)
    assert not host_allowed(rules, "corp.example", public)
    assert not host_allowed(rules, "evilcorp.example", public)


def test_an_allowed_name_that_resolves_to_a_metadata_address_is_still_refused():
    rules = parse_rules(["db.example.com"])
    assert not host_allowed(rules, "db.example.com", [ip("10.0.0.5"), ip("169.254.169.254")])


def test_a_name_outside_the_name_entries_needs_every_address_inside_the_networks():
    rules = parse_rules(["10.0.0.0/8"])
    assert host_allowed(rules, "db.internal", [ip("10.0.0.5"), ip("10.0.0.6")])
    assert not host_allowed(rules, "db.internal", [ip("10.0.0.5"), ip("192.0.2.1")])


def test_an_organisation_without_entries_follows_the_server_default(settings):
    settings.STRONGBOX_DEFAULT_ALLOWED_HOSTS = ["10.0.0.0/8"]
    assert rules_from([]).entries == ("10.0.0.0/8",)
    assert rules_from(None).entries == ("10.0.0.0/8",)
    assert rules_from(["*"]).any_host  # an organisation's own policy replaces the default


@pytest.mark.parametrize(
    ("entry", "valid"),
    [
        ("10.0.0.0/8", True),
        ("10.0.0.7", True),
        ("2001:db8::/32", True),
        ("db.example.com", True),
        ("*.example.com", True),
        ("*", True),
        ("10.0.0.1/8", False),  # host bits set: a typo for 10.0.0.0/8
        ("10.0.0.0/33", False),
        ("db example.com", False),
        ("*.", False),
        ("http://db.example.com", False),
    ],
)
def test_policy_entries_are_validated(entry, valid):
    assert (entry_problem(entry) is None) is valid


def test_local_sockets_and_localhost_follow_the_loopback_rule():
    assert rules_problem(parse_rules(["127.0.0.0/8"]), "") is None
    assert rules_problem(parse_rules(["localhost"]), "/var/run/postgresql") is None
    for host in ("", "/var/run/postgresql", "localhost"):
        assert rules_problem(parse_rules(["10.0.0.0/8"]), host) is not None


@pytest.mark.parametrize(
    "spelling", ["2852039166", "0xa9fea9fe", "169.254.43518", "0251.0376.0251.0376", "fe80::1%lo"]
)
def test_other_spellings_of_the_metadata_address_are_judged_by_what_they_resolve_to(spelling):
    # The C resolver reads these as 169.254.169.254 (or a link-local IPv6), as clients would.
    assert rules_problem(parse_rules([]), spelling) is not None
    with pytest.raises(HostNotAllowed):
        allowed_addresses(parse_rules([]), spelling, 80)


def test_a_comma_separated_host_list_is_refused_rather_than_passed_to_the_client():
    # libpq would try every host of "a,b": only one checked host may reach it.
    problem = rules_problem(parse_rules([]), "169.254.169.254,db.example.com")
    assert "give exactly one" in problem


# --- resolution, for real -----------------------------------------------------------------------


def test_a_name_is_judged_by_what_it_resolves_to_now():
    # The machine's own name resolves locally (no outside DNS) to its address.
    name = socket.gethostname()
    [address] = {info[4][0] for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)}
    network = ipaddress.ip_network(address).supernet(new_prefix=8 if ":" not in address else 64)
    assert allowed_addresses(parse_rules([str(network)]), name, 5432) == [address]
    with pytest.raises(HostNotAllowed):
        allowed_addresses(parse_rules(["192.0.2.0/24"]), name, 5432)


def test_a_name_that_does_not_resolve_is_not_reachable_at_connect_time():
    with pytest.raises(HostUnresolved):
        allowed_addresses(parse_rules([]), "no-such-host.invalid", 5432)
    # On saving, it passes an open policy (it is checked again on every connection)...
    assert rules_problem(parse_rules([]), "no-such-host.invalid") is None
    # ...but not a restrictive one, which it cannot be shown to satisfy.
    assert rules_problem(parse_rules(["10.0.0.0/8"]), "no-such-host.invalid") is not None


# --- the operator sets the policy ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_adds_removes_and_clears_entries(organisation):
    out = StringIO()
    call_command(
        "host_policy", organisation.slug, "--allow", "10.0.0.0/8", "--allow", "*.db.example",
        stdout=out,
    )  # fmt: skip
    assert HostPolicy.objects.get(organisation=organisation).allowed_hosts == [
        "10.0.0.0/8",
        "*.db.example",
    ]
    call_command("host_policy", organisation.slug, "--remove", "10.0.0.0/8", stdout=out)
    assert HostPolicy.objects.get(organisation=organisation).allowed_hosts == ["*.db.example"]
    call_command("host_policy", organisation.slug, "--clear", stdout=out)
    assert HostPolicy.objects.get(organisation=organisation).allowed_hosts == []
    shown = StringIO()
    call_command("host_policy", organisation.slug, stdout=shown)
    assert "server default: any host" in shown.getvalue()


@pytest.mark.django_db
def test_the_command_refuses_an_invalid_entry_and_keeps_the_policy(organisation):
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    with pytest.raises(CommandError, match="10.0.0.1/8"):
        call_command("host_policy", organisation.slug, "--allow", "10.0.0.1/8", stdout=StringIO())
    assert HostPolicy.objects.get(organisation=organisation).allowed_hosts == ["10.0.0.0/8"]


@pytest.mark.django_db
def test_only_superusers_see_and_change_host_policies_in_the_admin(
    client, django_user_model, organisation
):
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/organizations/hostpolicy/").status_code == 403

    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    url = "/admin/organizations/hostpolicy/add/"
    refused = client.post(url, {"organisation": organisation.pk, "allowed_hosts": "10.0.0.1/8"})
    assert refused.status_code == 200 and "host bits set" in refused.content.decode()
    saved = client.post(
        url, {"organisation": organisation.pk, "allowed_hosts": "10.0.0.0/8\n db.example.com \n"}
    )
    assert saved.status_code == 302
    assert HostPolicy.objects.get(organisation=organisation).allowed_hosts == [
        "10.0.0.0/8",
        "db.example.com",
    ]


# --- tenants saving hosts -------------------------------------------------------------------------


def _database_body(host, **extra):
    return {"name": "Orders", "engine": "postgresql", "host": host, "port": 5432,
            "databaseName": "orders", **extra}  # fmt: skip


@pytest.mark.django_db
def test_the_api_refuses_a_metadata_address_as_a_database_host_naming_the_field(
    client_for, organisation, environment
):
    url = f"/api/environments/{environment.id}/databases"
    response = client_for(organisation).post(url, _database_body("169.254.169.254"), format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert list(body["fields"]) == ["host"]
    assert "may reach" in body["fields"]["host"][0]
    assert not Database.objects.exists()


@pytest.mark.django_db
def test_two_organisations_with_different_policies_side_by_side(
    client_for, organisation, other_organisation, environment
):
    other_environment = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    host_policy_set(organisation=other_organisation, allowed_hosts=["192.168.0.0/16"])
    ours = f"/api/environments/{environment.id}/databases"
    theirs = f"/api/environments/{other_environment.id}/databases"
    post = lambda org, url, host, slug: client_for(org).post(  # noqa: E731
        url, _database_body(host, slug=slug), format="json"
    )

    assert post(organisation, ours, "10.1.2.3", "a").status_code == 201
    assert post(organisation, ours, "192.168.1.2", "b").status_code == 400
    assert post(other_organisation, theirs, "192.168.1.2", "a").status_code == 201
    assert post(other_organisation, theirs, "10.1.2.3", "b").status_code == 400
    # Neither organisation's loopback is allowed, socket or name.
    assert post(organisation, ours, "localhost", "c").status_code == 400
    assert post(organisation, ours, "", "d").status_code == 400


@pytest.mark.django_db
def test_changing_a_database_host_is_checked_and_unrelated_changes_are_not(
    client_for, organisation, environment
):
    database = factories.DatabaseFactory(
        environment=environment, engine="postgresql", host="10.0.0.5", database_name="orders"
    )
    host_policy_set(organisation=organisation, allowed_hosts=["192.168.0.0/16"])
    url = f"/api/databases/{database.id}"
    client = client_for(organisation)
    refused = client.patch(url, {"host": "10.0.0.6"}, format="json")
    assert refused.status_code == 400 and "host" in refused.json()["error"]["fields"]
    assert client.patch(url, {"name": "Renamed"}, format="json").status_code == 200
    assert client.patch(url, {"host": "192.168.4.4"}, format="json").status_code == 200


@pytest.mark.django_db
def test_a_sqlite_database_has_no_host_to_check(
    client_for, organisation, environment, organisation_dir
):
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    body = {"name": "Local", "engine": "sqlite", "databaseName": str(organisation_dir / "a.db")}
    url = f"/api/environments/{environment.id}/databases"
    assert client_for(organisation).post(url, body, format="json").status_code == 201


@pytest.mark.django_db
def test_the_admin_refuses_a_database_host_outside_the_policy(
    client, django_user_model, environment
):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    host_policy_set(organisation=environment.organisation, allowed_hosts=["10.0.0.0/8"])
    form = {"environment": environment.pk, "name": "Orders", "slug": "orders",
            "engine": "postgresql", "host": "192.0.2.10", "port": "5432",
            "database_name": "orders", "options": "{}"}  # fmt: skip
    refused = client.post("/admin/organizations/database/add/", form)
    assert refused.status_code == 200 and "may reach" in refused.content.decode()
    assert not Database.objects.exists()
