"""The role map (organizations/sso.py): its syntax, which role a set of groups gets where,
where the groups are found in the claims, and what ``manage.py check`` says of the settings."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from organizations.sso import RoleRule, grants_for, groups_from_claims, parse_role_map

EXAMPLE = "platform-admins=quant-gov:admin,platform-ops=quant-gov:operator,auditors=*:viewer"


def test_the_example_of_the_readme_reads_as_three_rules():
    assert parse_role_map(EXAMPLE) == [
        RoleRule("platform-admins", "quant-gov", "admin"),
        RoleRule("platform-ops", "quant-gov", "operator"),
        RoleRule("auditors", "*", "viewer"),
    ]


def test_entries_may_be_on_lines_and_groups_may_hold_slashes_equals_and_spaces():
    text = (
        "\n  /teams/ops = quant-gov:operator\n\ncn=dba=elsewhere:admin,\n"
        "Data Team=elsewhere:viewer\n"
    )
    assert parse_role_map(text) == [
        RoleRule("/teams/ops", "quant-gov", "operator"),
        RoleRule("cn=dba", "elsewhere", "admin"),
        RoleRule("Data Team", "elsewhere", "viewer"),
    ]


def test_an_empty_map_gives_no_rules():
    assert parse_role_map("") == []
    assert parse_role_map(" , \n") == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("admins", "'admins'"),
        ("admins=quant-gov", "'admins=quant-gov'"),
        ("=quant-gov:admin", "'=quant-gov:admin'"),
        ("admins=:admin", "'admins=:admin'"),
        ("admins=quant-gov:owner", "not 'owner'"),
        ("admins=quant-gov:", "not ''"),
    ],
)
def test_an_entry_that_does_not_read_is_refused_naming_it(text, named):
    with pytest.raises(ValueError, match=named):
        parse_role_map(f"ok=quant-gov:viewer,{text}")


def test_the_highest_role_wins_when_several_groups_name_one_organisation():
    rules = parse_role_map("a=quant-gov:viewer,b=quant-gov:admin,c=quant-gov:operator")
    assert grants_for(["a", "b", "c"], rules, ["quant-gov"]) == {"quant-gov": "admin"}
    assert grants_for(["a", "c"], rules, ["quant-gov"]) == {"quant-gov": "operator"}


def test_every_organisation_means_each_that_exists_and_a_named_one_can_rank_higher():
    rules = parse_role_map("auditors=*:viewer,ops=quant-gov:operator")
    slugs = ["quant-gov", "elsewhere"]
    assert grants_for(["auditors"], rules, slugs) == {"quant-gov": "viewer", "elsewhere": "viewer"}
    assert grants_for(["auditors", "ops"], rules, slugs) == {
        "quant-gov": "operator",
        "elsewhere": "viewer",
    }


def test_groups_of_no_rule_and_organisations_that_do_not_exist_give_nothing():
    rules = parse_role_map("ops=gone:admin,ops=quant-gov:viewer")
    assert grants_for(["contractors"], rules, ["quant-gov"]) == {}
    assert grants_for(["ops"], rules, ["quant-gov"]) == {"quant-gov": "viewer"}
    # Group names are compared exactly: no case folding, no prefix matching.
    assert grants_for(["Ops", "ops-team"], rules, ["quant-gov"]) == {}


def test_groups_are_read_from_a_list_a_string_or_a_nested_claim():
    assert groups_from_claims({"groups": ["a", "b", 3]}, "groups") == ["a", "b"]
    assert groups_from_claims({"groups": "a"}, "groups") == ["a"]
    assert groups_from_claims({}, "groups") == []
    assert groups_from_claims({"realm_access": {"roles": ["x"]}}, "realm_access.roles") == ["x"]
    assert groups_from_claims({"realm_access": ["x"]}, "realm_access.roles") == []


@pytest.mark.django_db
def test_manage_py_check_names_a_role_map_entry_that_does_not_read(settings):
    settings.STRONGBOX_OIDC_ROLE_MAP = "admins=quant-gov:boss"
    with pytest.raises(SystemCheckError, match=r"strongbox.E140.*'admins=quant-gov:boss'"):
        call_command("check")


@pytest.mark.django_db
def test_manage_py_check_asks_for_an_issuer_or_every_endpoint(settings):
    settings.STRONGBOX_OIDC_CLIENT_ID = "strongbox"
    settings.STRONGBOX_OIDC_ISSUER = ""
    settings.STRONGBOX_OIDC_AUTHORIZATION_ENDPOINT = "https://idp.example/auth"
    with pytest.raises(SystemCheckError, match=r"strongbox.E141.*STRONGBOX_OIDC_TOKEN_ENDPOINT"):
        call_command("check")


@pytest.mark.django_db
def test_manage_py_check_warns_when_only_superusers_could_sign_in(settings, capsys):
    settings.STRONGBOX_LOCAL_LOGIN = False
    settings.STRONGBOX_OIDC_CLIENT_ID = ""
    call_command("check")
    assert "strongbox.W140" in capsys.readouterr().err
