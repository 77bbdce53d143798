"""The pure parts of restoring PostgreSQL access: which roles a dump's SQL names, how a list
setting is given back, and which load errors come from restoring owners and grants."""

import io

import pytest

from restores.pg_access import Access, Rejoined, roles_in_sql, split_setting_list

# As pg_restore --schema-only prints them (pg_dump's quoting), with a function body between.
SCHEMA_SQL = """\
CREATE FUNCTION public.f() RETURNS integer
    LANGUAGE plpgsql
    AS $$ begin
  GRANT SELECT ON t TO nobody_here;
return 1; end $$;
ALTER FUNCTION public.f() OWNER TO app;
ALTER TABLE public.t OWNER TO "Billing Owner";
GRANT CREATE ON SCHEMA public TO app;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT SELECT ON TABLE public.t TO "read ""only"" TO x";
GRANT UPDATE ON TABLE public.t TO granter WITH GRANT OPTION;
SET SESSION AUTHORIZATION granter;
GRANT UPDATE ON TABLE public.t TO reporting;
RESET SESSION AUTHORIZATION;
GRANT SELECT(v) ON TABLE public.t TO GROUP auditors;
ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES  TO reader;
ALTER DEFAULT PRIVILEGES FOR ROLE app REVOKE ALL ON FUNCTIONS FROM PUBLIC;
"""


def test_the_roles_a_dump_names_are_sorted_by_what_restoring_them_needs():
    roles = roles_in_sql(SCHEMA_SQL.splitlines())

    assert roles.owners == {"app", "Billing Owner"}
    assert roles.grantees == {
        "app",
        'read "only" TO x',
        "granter",
        "reporting",
        "auditors",
        "reader",
    }
    assert roles.actors == {"app"}
    assert roles.grantors == {"granter"}


def test_a_function_body_line_that_looks_like_a_grant_counts_too_which_only_errs_safe():
    # The indented line above is skipped; one at the start of a line is taken as a grant,
    # so a missing "nobody_here" would leave GRANTs out rather than fail the load.
    assert "nobody_here" in roles_in_sql(["GRANT SELECT ON t TO nobody_here;"]).grantees


@pytest.mark.parametrize(
    ("stored", "items"),
    [
        ('app, "B c", public', ["app", "B c", "public"]),
        ('"$user", public', ["$user", "public"]),
        ('"x""y",z', ['x"y', "z"]),
        ('""', [""]),
    ],
)
def test_list_settings_are_split_as_postgresql_stored_them(stored, items):
    assert split_setting_list(stored) == items


def test_only_errors_from_owners_or_grants_lead_to_a_load_without_them():
    tried = Access(owners=True, privileges=True, user="strongbox")
    error = 'pg_restore: error: could not execute query: ERROR:  role "app" does not exist'

    assert tried.refused(error) == 'role "app" does not exist'
    assert tried.refused("ERROR:  permission denied for schema public") == (
        "permission denied for schema public"
    )
    assert tried.refused('ERROR:  relation "lookup" does not exist') is None
    assert Access(owners=False, privileges=False, user="strongbox").refused(error) is None
    assert "objects are owned by strongbox" in tried.without("x").note


def test_the_bytes_a_scan_took_are_given_back_before_the_rest():
    stream = io.BytesIO(b"0123456789")
    head = io.BytesIO(stream.read(4))

    rejoined = Rejoined(head, stream)

    assert b"".join(iter(lambda: rejoined.read(3), b"")) == b"0123456789"
