"""Server-Sent Event streams of progress: the machinery every stream shares.

The backups and restores apps declare their streams (``backups.api.views``,
``restores.api.views``): a ``ProgressStreamView`` naming its ``Subject``, whose loader
reads rows of its kind into progress events.

The views are ordinary DRF views, so authentication, tenancy, roles, 404s and the
error body are exactly those of every other endpoint; only a successful answer is
a ``StreamingHttpResponse`` over an async generator. Under ASGI (uvicorn) the
generator runs on the event loop and waits on a ``ProgressPoller`` that reads the rows of
every open stream of the process together every ``POLL_SECONDS`` (one query per kind,
through ``sync_to_async``), so an open stream costs no thread nor connection while it
waits. Under WSGI
Django consumes the generator to its end before answering, which is fine for
finished work and for tests, not for following a live backup.

The stream sends ``event: progress`` whenever the progress changes (a phase starting or
ending is a change: each event lists every phase with its state), a final ``event: done``
or ``event: failed`` (which adds the finished run's ``result``), then closes. A stream
opened after the work finished sends the final event at once. A client that goes away cancels the
generator (Django cancels the response task on ``http.disconnect``); after
``MAX_SECONDS`` the stream says ``event: timeout`` and closes so that nothing
lives forever: ``EventSource`` reconnects by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer

from api.base.schema import errors, uuid_path
from api.base.views import StreamingAPIView, error_only_renderer
from config.errors import InvalidInput

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
MAX_SECONDS = float(settings.STRONGBOX_SSE_MAX_SECONDS)

# Streams currently open in this process (a disconnect must bring it back down).
open_streams = 0

Result = tuple[dict, str | None]  # (the progress event, the final event's name or None)


# The loader of one kind of row: primary keys -> {pk: Result}, one query for all of them.
SubjectLoader = Callable[[list], dict]


@dataclass(frozen=True)
class Subject:
    """What a stream follows: one row, by primary key, and the loader of its kind."""

    load: SubjectLoader
    pk: uuid.UUID


def sse_message(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def load_subjects(subjects: list[Subject]) -> dict[Subject, Result]:
    """One query per kind for every subject, on a connection given back afterwards.

    Under ASGI, Django's connections follow the request's context: a stream that kept its
    connection would hold one for as long as it is open, and 100 open streams would take
    PostgreSQL's default ``max_connections`` away from the workers. (Inside a
    transaction, as in tests, the connection is left as it is.)
    """
    try:
        results: dict[Subject, Result] = {}
        for load in dict.fromkeys(subject.load for subject in subjects):
            pks = [subject.pk for subject in subjects if subject.load is load]
            by_pk = load(pks)
            results.update({Subject(load, pk): by_pk[pk] for pk in pks})
        return results
    finally:
        release_connection()


def release_connection() -> None:
    if not connection.in_atomic_block:
        connection.close()


class ProgressPoller:
    """Polls for every stream of one event loop at once.

    Each stream asks ``next(subject)`` and waits; every ``POLL_SECONDS`` the poller reads
    all the subjects asked for in one query per kind and answers them together. So 100
    open streams cost two small queries per tick, not 100 connections and queries. The
    polling task ends when no stream is waiting and starts again on the next request.
    """

    def __init__(self) -> None:
        self.waiting: dict[Subject, list[asyncio.Future]] = {}
        self.task: asyncio.Task | None = None

    async def next(self, subject: Subject) -> Result:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.setdefault(subject, []).append(future)
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        load = sync_to_async(load_subjects, thread_sensitive=True)
        while self.waiting:
            batch, self.waiting = self.waiting, {}
            try:
                results = await load(list(batch))
            except Exception as exc:  # noqa: BLE001 - each stream gets the error
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
            else:
                for subject, futures in batch.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(results[subject])
            await asyncio.sleep(POLL_SECONDS)


# One poller per event loop (uvicorn runs one; tests make their own).
_pollers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def poller() -> ProgressPoller:
    loop = asyncio.get_running_loop()
    found = _pollers.get(loop)
    if found is None:
        found = _pollers[loop] = ProgressPoller()
    return found


async def event_stream(subject: Subject) -> AsyncIterator[bytes]:
    """Follow ``subject`` through the shared poller until its final event."""
    global open_streams
    open_streams += 1
    loop = asyncio.get_running_loop()
    started = last_sent = loop.time()
    previous = None
    try:
        while True:
            event, final = await poller().next(subject)
            now = loop.time()
            if final is not None:
                yield sse_message(final, event)
                return
            if event != previous:
                yield sse_message("progress", event)
                previous, last_sent = event, now
            elif now - last_sent >= KEEPALIVE_SECONDS:
                yield b": keep-alive\n\n"
                last_sent = now
            if now - started >= MAX_SECONDS:
                yield sse_message(
                    "timeout",
                    {**event, "message": "The stream reached its maximum duration; reconnect."},
                )
                return
    except asyncio.CancelledError:
        logger.debug("progress stream closed by the client")
        raise
    finally:
        open_streams -= 1


# --- views -----------------------------------------------------------------------------------


# Lets a client ask for ``text/event-stream``; only error bodies are ever rendered.
EventStreamRenderer = error_only_renderer("text/event-stream", "sse")


SSE_EXAMPLE = (
    'event: progress\ndata: {"status": "in-progress", "phase": "UPLOAD", "bytesDone": 1048576, '
    '"bytesTotal": 1945663, "percent": 53.9, "message": ""}\n\n'
    'event: done\ndata: {"status": "completed", "phase": "VERIFY", "bytesDone": 1945663, '
    '"bytesTotal": 1945663, "percent": 100.0, "message": "Stored in 1 destination."}\n\n'
)


# One event of the stream (how OpenAPI tools read ``text/event-stream``).
SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["progress", "done", "failed", "timeout"]},
        "data": {
            "type": "string",
            "description": "JSON: {status, phase, phases, bytesDone, bytesTotal, percent, "
            "message, etaSeconds}; `phases` lists each phase as {name, state (pending, running, "
            "done, failed, skipped), startedAt, finishedAt, durationSec}; the final `done` or "
            "`failed` event adds `result`, what only a finished run has (a backup's size, "
            "checksum, duration and copies; a restore's bytes read, duration, safety backup "
            "and whether it can be undone)",
        },
    },
    "required": ["event", "data"],
}


def stream_schema(summary: str, description: str, what: str):
    return extend_schema(
        summary=summary,
        description=description
        + " Events: `progress` (JSON `{status, phase, phases, bytesDone, bytesTotal, percent, "
        "message}`), then a final `done` or `failed` (with `result`); `timeout` when the "
        "stream reached its maximum duration.",
        parameters=[uuid_path("id", f"{what} UUID")],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                SSE_EVENT_SCHEMA,
                description=f"SSE stream of {what.lower()} progress",
                examples=[OpenApiExample("Stream", value=SSE_EXAMPLE)],
            ),
            **errors(400, 404),
        },
        tags=["seed 003: progress"],
    )


class ProgressStreamView(StreamingAPIView):
    """A stream of one subject's progress; ``subject()`` finds it in the caller's tenant
    (put ``TenantViewSetMixin`` in front)."""

    renderer_classes = [EventStreamRenderer, JSONRenderer]
    # An open stream is one request however long it lasts, and EventSource stops
    # reconnecting after a 429: request rates leave streams alone (a bad bearer token is
    # still throttled by the authentication).
    throttle_classes = []

    def subject(self, id) -> Subject:  # noqa: A002 - the documented name
        raise NotImplementedError

    def initial(self, request, *args, **kwargs):
        # DRF ignores an empty ``format`` and answers an unknown one with a bare 404; the
        # schema's enum has neither, so both are a 400 naming it (before negotiation).
        if "format" in request.query_params:
            formats = sorted(renderer.format for renderer in self.renderer_classes)
            if request.query_params["format"] not in formats:
                message = f"Must be one of: {', '.join(formats)}."
                raise InvalidInput(f"format: {message}", fields={"format": [message]})
        super().initial(request, *args, **kwargs)

    def get(self, request, id):  # noqa: A002 - the documented name
        subject = self.subject(id)
        # The stream's lifetime is not the request's: give the connection back now.
        release_connection()
        response = StreamingHttpResponse(event_stream(subject), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return response
