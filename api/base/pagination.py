"""Paging helpers shared by the API dialects.

The documents page in five ways; all of them sit on the (created_at, id) order that
the backup indexes serve (or, for a ``Listing``, on a copy of that key kept by another
table and its index):

- keyset tokens (seed 000 ``nextToken``, seed 001 ``cursor``): opaque base64 JSON
  holding the last row's key, so rows inserted meanwhile neither repeat nor vanish;
- markers (seed 002): the id of the last item, turned into the same key;
- page numbers (seed 001 ``page``/``per_page``, seed 004 ``page``/``page_size``);
- offsets (seed 003 and Strongbox's own resources: ``limit``/``offset``);
- ``startId`` (seed 004): only rows created after that backup.

``count_total`` gives totals that stay cheap on large tables.

Every bad value is ``InvalidInput`` naming the caller's parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from django.db import connections
from django.db.models import Q, QuerySet

from config.errors import InvalidInput

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Deeper pages and offsets are refused: past 2**63 the database cannot take them (a 500),
# and no list here is anywhere near a billion rows.
MAX_PAGE = MAX_OFFSET = 10**9

Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class Listing:
    """Rows to show, and the queryset whose index gives their (created_at, id) order.

    ``keys`` holds one row per listed row, already filtered and ordered newest first,
    with the listed row's created_at and id in the fields named ``created_at`` and ``id``
    (for a plain queryset, the rows themselves). The pagers walk ``keys`` for a page's
    ids, then read just those rows from ``rows``.
    """

    rows: QuerySet
    keys: QuerySet
    created_at: str
    id: str


def _invalid(param: str, message: str) -> InvalidInput:
    return InvalidInput(f"{param}: {message}", fields={param: [message]})


def _integer(value, *, param: str, minimum: int, maximum: int | None = None) -> int:
    """An integer of at least ``minimum`` (and at most ``maximum``, when given)."""
    wanted = f"Enter an integer of at least {minimum}."
    if maximum is not None:
        wanted = f"Enter an integer from {minimum} to {maximum}."
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise _invalid(param, wanted) from None
    if number < minimum or (maximum is not None and number > maximum):
        raise _invalid(param, wanted)
    return number


def parse_limit(
    value, *, param: str = "limit", default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT
) -> int:
    """A page size: ``default`` when absent, at least 1, larger values clamped to ``maximum``."""
    if value is None or value == "":
        return default
    return min(_integer(value, param=param, minimum=1), maximum)


def parse_page(value, *, param: str = "page") -> int:
    """A 1-based page number, 1 when absent."""
    if value is None or value == "":
        return 1
    return _integer(value, param=param, minimum=1, maximum=MAX_PAGE)


def parse_offset(value, *, param: str = "offset") -> int:
    if value is None or value == "":
        return 0
    return _integer(value, param=param, minimum=0, maximum=MAX_OFFSET)


# -- keyset ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyset:
    """A row's position in the (created_at, id) order."""

    created_at: datetime
    id: uuid.UUID

    @classmethod
    def of(cls, row) -> Keyset:
        return cls(created_at=row.created_at, id=row.id)


@dataclass(frozen=True)
class Cursor:
    """A position plus a direction: rows after ``key``, or before it when ``backwards``."""

    key: Keyset
    backwards: bool = False


def encode_cursor(cursor: Cursor) -> str:
    payload = {"t": cursor.key.created_at.isoformat(), "i": cursor.key.id.hex}
    if cursor.backwards:
        payload["b"] = 1
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str, *, param: str) -> Cursor:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created_at = datetime.fromisoformat(payload["t"])
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        key = Keyset(created_at=created_at, id=uuid.UUID(payload["i"]))
        return Cursor(key=key, backwards=bool(payload.get("b")))
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError, UnicodeError):
        raise _invalid(param, "Invalid or corrupted pagination token.") from None


def _beyond(
    key: Keyset,
    *,
    descending: bool,
    inclusive: bool = False,
    created_at: str = "created_at",
    pk: str = "id",
) -> Q:
    """Rows strictly past ``key`` in the given direction (or at it, when ``inclusive``).

    Written as ``created_at <= t AND (created_at < t OR id < i)`` rather than a
    plain OR so the database can use the (…, created_at, id) index as a range.
    ``created_at`` and ``pk`` name the fields that hold the key.
    """
    bound, past = ("lte", "lt") if descending else ("gte", "gt")
    last = bound if inclusive else past
    return Q(**{f"{created_at}__{bound}": key.created_at}) & (
        Q(**{f"{created_at}__{past}": key.created_at}) | Q(**{f"{pk}__{last}": key.id})
    )


def _ordered(
    queryset: QuerySet, *, descending: bool, created_at: str = "created_at", pk: str = "id"
) -> QuerySet:
    if descending:
        return queryset.order_by(f"-{created_at}", f"-{pk}")
    return queryset.order_by(created_at, pk)


def _listing(source: QuerySet | Listing) -> Listing:
    """A queryset as a Listing that keeps its own order."""
    if isinstance(source, Listing):
        return source
    return Listing(rows=source, keys=source, created_at="created_at", id="pk")


def _slice(listing: Listing, start: int, stop: int) -> list:
    """Rows ``start:stop`` of ``listing``, found by id first ("deferred join").

    The ids come from the bare (…, created_at, id) index, often without touching the
    table (an index-only scan); only the page's rows are then read and joined. That
    keeps deep OFFSETs cheap, and keeps the planner from walking the lone created_at
    index when the wanted rows are rare among recent ones. One more query per page,
    still a constant number.
    """
    keys = listing.keys.prefetch_related(None)
    ids = list(keys.values_list(listing.id, flat=True)[start:stop])
    if not ids:
        return []
    by_id = {row.pk: row for row in listing.rows.filter(pk__in=ids).order_by()}
    return [by_id[pk] for pk in ids if pk in by_id]


@dataclass
class KeysetPage:
    items: list
    next_cursor: str | None
    previous_cursor: str | None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None


def keyset_paginate(
    queryset: QuerySet | Listing,
    *,
    limit: int,
    cursor: Cursor | None = None,
    order: Order = "desc",
) -> KeysetPage:
    """One page of ``queryset`` in (created_at, id) ``order``, after or before ``cursor``.

    Two queries (plus the queryset's prefetches), whatever the page's depth.
    """
    listing = _listing(queryset)
    fields = {"created_at": listing.created_at, "pk": listing.id}
    descending = order == "desc"
    backwards = cursor is not None and cursor.backwards
    scan_descending = descending != backwards
    keys = listing.keys
    if cursor is not None:
        keys = keys.filter(_beyond(cursor.key, descending=scan_descending, **fields))
    keys = _ordered(keys, descending=scan_descending, **fields)
    rows = _slice(replace(listing, keys=keys), 0, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        has_next, has_previous = True, more
    else:
        has_next, has_previous = more, cursor is not None
    next_cursor = previous_cursor = None
    if rows and has_next:
        next_cursor = encode_cursor(Cursor(Keyset.of(rows[-1])))
    if rows and has_previous:
        previous_cursor = encode_cursor(Cursor(Keyset.of(rows[0]), backwards=True))
    return KeysetPage(items=rows, next_cursor=next_cursor, previous_cursor=previous_cursor)


# -- markers (seed 002) ------------------------------------------------------------------


def marker_cursor(scope: QuerySet, marker: str, *, param: str = "marker") -> Cursor:
    """The position of the backup ``marker`` names, looked up in ``scope`` (the tenant's rows).

    Look it up in the unfiltered scope: a marker stays valid when its row no longer
    matches the filters (its status changed meanwhile).
    """
    try:
        pk = uuid.UUID(str(marker))
    except ValueError:
        raise _invalid(
            param, "Enter the id (a UUID) of the last item of the previous page."
        ) from None
    row = scope.filter(pk=pk).prefetch_related(None).values_list("created_at", "id").first()
    if row is None:
        raise _invalid(param, f"No backup with id {pk}.")
    return Cursor(Keyset(created_at=row[0], id=row[1]))


def previous_marker(
    queryset: QuerySet,
    *,
    first: Keyset,
    limit: int,
    order: Order = "desc",
    inclusive: bool = False,
) -> tuple[bool, str | None]:
    """Where the page before the one starting at ``first`` starts, for a ``previous`` link.

    Returns (whether there is a previous page, the marker that opens it; None for the
    first page). ``inclusive`` counts ``first`` itself as part of the previous page
    (used when the current page is empty and ``first`` is the marker).
    """
    descending = order == "desc"
    before = queryset.filter(_beyond(first, descending=not descending, inclusive=inclusive))
    ids = list(
        _ordered(before, descending=not descending)
        .prefetch_related(None)
        .values_list("id", flat=True)[: limit + 1]
    )
    if not ids:
        return False, None
    if len(ids) <= limit:
        return True, None
    return True, str(ids[limit])


# -- startId (seed 004) ------------------------------------------------------------------


def created_after_backup(
    queryset: QuerySet, *, scope: QuerySet, backup_id: str, param: str = "startId"
) -> QuerySet:
    """Rows created after the backup ``backup_id`` (looked up in ``scope``)."""
    cursor = marker_cursor(scope, backup_id, param=param)
    return queryset.filter(_beyond(cursor.key, descending=False))


# -- page numbers and offsets ------------------------------------------------------------


@dataclass
class NumberPage:
    items: list
    page: int
    per_page: int
    has_next: bool


def page_number_paginate(queryset: QuerySet | Listing, *, page: int, per_page: int) -> NumberPage:
    """One numbered page; fetches one extra row to know whether another follows (no COUNT)."""
    start = (page - 1) * per_page
    rows = _slice(_listing(queryset), start, start + per_page + 1)
    return NumberPage(
        items=rows[:per_page], page=page, per_page=per_page, has_next=len(rows) > per_page
    )


@dataclass
class OffsetPage:
    items: list
    total: int
    limit: int
    offset: int


def offset_paginate(queryset: QuerySet, *, limit: int, offset: int) -> OffsetPage:
    """``limit`` rows from ``offset``, with the total count of the (filtered) queryset."""
    rows = _slice(_listing(queryset), offset, offset + limit)
    total = queryset.count() if rows or offset else 0
    if rows and offset == 0 and len(rows) < limit:
        total = len(rows)
    return OffsetPage(items=rows, total=total, limit=limit, offset=offset)


def offset_page(
    request, queryset, *, default_limit: int = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
):
    """(items, count, limit, offset) of one page: ``limit`` (larger is clamped) and
    ``offset`` read with the dialects' shared helpers, so errors name the parameter."""
    params = request.query_params
    limit = parse_limit(params.get("limit"), default=default_limit, maximum=max_limit)
    offset = parse_offset(params.get("offset"))
    if isinstance(queryset, QuerySet):
        page = offset_paginate(queryset, limit=limit, offset=offset)
        return page.items, page.total, limit, offset
    return list(queryset[offset : offset + limit]), len(queryset), limit, offset


def paged_body(results: list, count: int, limit: int, offset: int) -> dict:
    """Seed 003's page: ``{"results", "count", "limit", "offset"}``."""
    return {"results": results, "count": count, "limit": limit, "offset": offset}


# -- totals ------------------------------------------------------------------------------

EXACT_TOTAL_UP_TO = 10_000


def count_total(queryset: QuerySet, *, exact_up_to: int = EXACT_TOTAL_UP_TO) -> int:
    """How many rows match: exact up to ``exact_up_to``, the planner's estimate above.

    An exact COUNT walks every matching row (hundreds of milliseconds over a million
    backups); counting stops after ``exact_up_to + 1`` rows, and beyond that
    PostgreSQL's own row estimate for the query is used (never less than the cap).
    """
    bare = queryset.prefetch_related(None).order_by()
    counted = bare.values("pk")[: exact_up_to + 1].count()
    if counted <= exact_up_to:
        return counted
    connection = connections[bare.db]
    if connection.vendor != "postgresql":
        return bare.count()
    sql, params = bare.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return max(int(plan[0]["Plan"]["Plan Rows"]), counted)
