"""The paging helpers every dialect shares."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from api.base.pagination import (
    Cursor,
    Keyset,
    count_total,
    created_after_backup,
    decode_cursor,
    encode_cursor,
    keyset_paginate,
    marker_cursor,
    offset_paginate,
    page_number_paginate,
    parse_limit,
    parse_offset,
    parse_page,
    previous_marker,
)
from backups.selectors import backups_for_organisation
from config.errors import InvalidInput
from tests import factories

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def make(environment):
    def make(minutes: float, **kwargs):
        return factories.BackupFactory(
            environment=environment, created_at=T0 + timedelta(minutes=minutes), **kwargs
        )

    return make


def walk(queryset, *, limit, order="desc", between_pages=None):
    seen, cursor, pages = [], None, 0
    while True:
        page = keyset_paginate(queryset, limit=limit, cursor=cursor, order=order)
        seen += [b.id for b in page.items]
        pages += 1
        if between_pages is not None:
            between_pages(pages)
        if not page.has_next:
            return seen
        cursor = decode_cursor(page.next_cursor, param="nextToken")


def test_keyset_pages_visit_every_row_once_while_newer_rows_arrive(organisation, make):
    originals = [make(i).id for i in range(10)]
    queryset = backups_for_organisation(organisation=organisation)
    seen = walk(queryset, limit=3, between_pages=lambda n: make(1000 + n))
    assert seen == originals[::-1], "no duplicates, no skips, newest first"


def test_ascending_keyset_pages_pick_up_rows_inserted_meanwhile_exactly_once(organisation, make):
    originals = [make(i).id for i in range(7)]
    inserted = []
    seen = walk(
        backups_for_organisation(organisation=organisation),
        limit=3,
        order="asc",
        between_pages=lambda n: inserted.append(make(1000 + n).id) if n < 3 else None,
    )
    assert seen == originals + inserted
    assert len(seen) == len(set(seen))


def test_rows_created_at_the_same_instant_are_ordered_by_id(organisation, make):
    same = [make(5).id for _ in range(7)]
    seen = walk(backups_for_organisation(organisation=organisation), limit=2)
    assert seen == sorted(same, reverse=True)


def test_a_backwards_cursor_returns_the_previous_page(organisation, make):
    ids = [make(i).id for i in range(9)][::-1]
    queryset = backups_for_organisation(organisation=organisation)
    first = keyset_paginate(queryset, limit=3)
    second = keyset_paginate(
        queryset, limit=3, cursor=decode_cursor(first.next_cursor, param="cursor")
    )
    assert [b.id for b in second.items] == ids[3:6]
    assert first.previous_cursor is None
    back = keyset_paginate(
        queryset, limit=3, cursor=decode_cursor(second.previous_cursor, param="cursor")
    )
    assert [b.id for b in back.items] == ids[:3]
    assert back.has_next
    assert not back.has_previous


def test_tokens_round_trip_and_are_opaque_base64_json(make):
    backup = make(1)
    token = encode_cursor(Cursor(Keyset.of(backup)))
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert set(payload) == {"t", "i"}
    assert decode_cursor(token, param="nextToken") == Cursor(Keyset.of(backup))


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "@@@",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"t": "2026-01-01T00:00:00"}').decode(),
        base64.urlsafe_b64encode(b'{"t": "2026-01-01T00:00:00", "i": "x"}').decode(),
        base64.urlsafe_b64encode(
            b'{"t": "2026-01-01T00:00:00", "i": "3c90c3cc0d444b5088888dd25736052a"}'
        ).decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
    ],
)
def test_an_invalid_token_is_invalid_input_naming_the_parameter(token):
    with pytest.raises(InvalidInput) as raised:
        decode_cursor(token, param="nextToken")
    assert "nextToken" in raised.value.message
    assert "nextToken" in raised.value.fields


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 20), ("", 20), ("5", 5), ("100", 100), ("101", 100), (5000, 100)]
)
def test_limits_default_and_clamp(value, expected):
    assert parse_limit(value) == expected


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5"])
def test_a_bad_limit_names_the_parameter(value):
    with pytest.raises(InvalidInput) as raised:
        parse_limit(value, param="per_page")
    assert raised.value.message.startswith("per_page:")


def test_pages_and_offsets_are_validated():
    assert parse_page(None) == 1
    assert parse_offset("") == 0
    with pytest.raises(InvalidInput):
        parse_page("0")
    with pytest.raises(InvalidInput):
        parse_offset("-1")


def test_page_numbers_know_whether_another_page_follows(organisation, make):
    for i in range(5):
        make(i)
    queryset = backups_for_organisation(organisation=organisation)
    assert page_number_paginate(queryset, page=2, per_page=2).has_next
    last = page_number_paginate(queryset, page=3, per_page=2)
    assert len(last.items) == 1
    assert not last.has_next


def test_offsets_report_the_total(organisation, make):
    for i in range(5):
        make(i)
    queryset = backups_for_organisation(organisation=organisation)
    assert offset_paginate(queryset, limit=2, offset=4).total == 5
    assert offset_paginate(queryset, limit=10, offset=0).total == 5
    assert offset_paginate(queryset, limit=2, offset=10).items == []


def test_markers_and_start_ids_are_looked_up_in_the_tenants_rows(
    organisation, other_organisation, make
):
    backups = [make(i) for i in range(4)]
    mine = backups_for_organisation(organisation=organisation)
    cursor = marker_cursor(mine, str(backups[1].id))
    assert cursor.key == Keyset.of(backups[1])
    with pytest.raises(InvalidInput):
        marker_cursor(backups_for_organisation(organisation=other_organisation), str(backups[1].id))
    later = created_after_backup(mine, scope=mine, backup_id=str(backups[1].id))
    assert {b.id for b in later} == {backups[2].id, backups[3].id}


def test_previous_marker_opens_the_page_before(organisation, make):
    ids = [make(i).id for i in range(7)][::-1]
    queryset = backups_for_organisation(organisation=organisation)
    third_page_first = Keyset.of(queryset.get(pk=ids[4]))
    assert previous_marker(queryset, first=third_page_first, limit=2) == (True, str(ids[1]))
    second_page_first = Keyset.of(queryset.get(pk=ids[2]))
    assert previous_marker(queryset, first=second_page_first, limit=2) == (True, None)
    first = Keyset.of(queryset.get(pk=ids[0]))
    assert previous_marker(queryset, first=first, limit=2) == (False, None)


@pytest.mark.parametrize("limit", [5, 50])
def test_a_keyset_page_is_three_queries_whatever_its_size(
    organisation, make, destination, django_assert_num_queries, limit
):
    for i in range(60):
        factories.BackupCopyFactory(backup=make(i), destination=destination)
    queryset = backups_for_organisation(organisation=organisation)
    cursor = Cursor(Keyset.of(queryset[2]))
    with django_assert_num_queries(3):  # ids, their rows, their copies
        page = keyset_paginate(queryset, limit=limit, cursor=cursor)
        for backup in page.items:
            _ = [c.destination.name for c in backup.copies.all()]
            _ = backup.environment.project.name
    assert len(page.items) == limit


def test_totals_are_exact_below_the_cap_and_never_below_it_above(organisation, make):
    for i in range(5):
        make(i)
    queryset = backups_for_organisation(organisation=organisation)
    assert count_total(queryset) == 5
    assert count_total(queryset.filter(status="failed")) == 0
    assert count_total(queryset, exact_up_to=3) >= 4
