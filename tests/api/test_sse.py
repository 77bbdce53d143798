"""Progress streams (SSE) under ASGI: events, final event, auth, disconnects, max duration."""

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient
from django.utils import timezone

from api.base import sse
from backups.models import Backup, BackupStatus
from organizations.models import Role
from restores.models import Restore
from tests import factories


def parse(body: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in body.decode().split("\n\n"):
        lines = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


async def _get(url: str, token: str | None, during=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await AsyncClient().get(url, headers=headers)
    body = b""
    if response.streaming:
        if during is not None:
            task = asyncio.create_task(during())
        async for chunk in response.streaming_content:
            body += chunk
        if during is not None:
            await task
    else:
        body = response.content
    return response, body


def get(url, token=None, during=None):
    return async_to_sync(_get)(url, token, during)


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(sse, "POLL_SECONDS", 0.02)


@pytest.fixture
def backup(environment):
    return factories.BackupFactory(environment=environment)


@pytest.mark.django_db
def test_a_finished_backup_sends_the_final_event_at_once(organisation, backup, token_for):
    response, body = get(f"/api/backups/{backup.id}/progress", token_for(organisation, Role.VIEWER))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    events = parse(body)
    assert [name for name, _ in events] == ["done"]
    data = events[0][1]
    assert data["status"] == "completed" and data["percent"] == 100.0
    assert set(data) >= {"status", "phase", "bytesDone", "bytesTotal", "percent", "message"}


@pytest.mark.django_db
def test_a_failed_backup_ends_with_a_failed_event(organisation, environment, token_for):
    failed = factories.BackupFactory(
        environment=environment, status=BackupStatus.FAILED, message="pg_dump exited with 1"
    )
    _, body = get(f"/api/backups/{failed.id}/progress", token_for(organisation))
    assert parse(body) == [("failed", parse(body)[0][1])]
    assert parse(body)[0][1]["message"] == "pg_dump exited with 1"


@pytest.mark.django_db
def test_a_running_backup_streams_progress_until_it_completes(
    organisation, environment, token_for, fast
):
    running = factories.BackupFactory(
        environment=environment, status=BackupStatus.IN_PROGRESS, phase="DUMP", bytes_total=1000
    )

    async def work():
        for done in (250, 500, 1000):
            await asyncio.sleep(0.1)
            await sync_to_async(Backup.objects.filter(pk=running.pk).update)(
                bytes_done=done, phase="UPLOAD"
            )
        await asyncio.sleep(0.1)
        await sync_to_async(Backup.objects.filter(pk=running.pk).update)(
            status=BackupStatus.COMPLETED, phase="VERIFY"
        )

    _, body = get(f"/api/backups/{running.id}/progress", token_for(organisation), during=work)
    events = parse(body)
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"progress"}
    percents = [data["percent"] for name, data in events if name == "progress"]
    assert percents[0] == 0.0
    assert 50.0 in percents
    assert percents == sorted(percents)  # each change once, in order
    assert events[-1][1]["percent"] == 100.0


@pytest.mark.django_db
def test_each_event_lists_every_phase_with_its_state_the_unstarted_ones_pending(
    organisation, environment, token_for, fast
):
    started = timezone.now() - timedelta(seconds=3)
    running = factories.BackupFactory(
        environment=environment,
        status=BackupStatus.IN_PROGRESS,
        phase="DUMP",
        phases=[
            {"name": name, "status": "RUNNING", "started_at": started.isoformat()}
            for name in ("DUMP", "COMPRESS", "UPLOAD")
        ],
    )

    async def work():
        await asyncio.sleep(0.1)
        ended = timezone.now()
        phases = [
            {
                "name": name,
                "status": "SUCCESS",
                "started_at": started.isoformat(),
                "finished_at": ended.isoformat(),
                "duration_sec": 3.0,
            }
            for name in ("DUMP", "COMPRESS", "UPLOAD")
        ]
        phases.append({"name": "VERIFY", "status": "ERROR", "started_at": ended.isoformat()})
        await sync_to_async(Backup.objects.filter(pk=running.pk).update)(
            status=BackupStatus.FAILED, phases=phases, message="the copy is short"
        )

    _, body = get(f"/api/backups/{running.id}/progress", token_for(organisation), during=work)
    (first_name, first), *_, (last_name, last) = parse(body)

    assert first_name == "progress" and "result" not in first  # only the final event has it
    assert [(p["name"], p["state"]) for p in first["phases"]] == [
        ("DUMP", "running"),
        ("COMPRESS", "running"),
        ("UPLOAD", "running"),
        ("VERIFY", "pending"),
    ]
    assert first["phases"][0]["startedAt"] == started.isoformat()
    assert first["phases"][3] == {
        "name": "VERIFY",
        "state": "pending",
        "startedAt": None,
        "finishedAt": None,
        "durationSec": None,
    }
    assert last_name == "failed" and last["message"] == "the copy is short"
    assert [p["state"] for p in last["phases"]] == ["done", "done", "done", "failed"]
    assert last["phases"][0]["durationSec"] == 3.0


@pytest.mark.django_db
def test_the_final_event_carries_sizes_checksum_duration_and_copies(
    organisation, environment, token_for
):
    started = timezone.now() - timedelta(seconds=12)
    backup = factories.BackupFactory(
        environment=environment,
        started_at=started,
        completed_at=started + timedelta(seconds=12.5),
        size=4096,
        compression="zstd",
        checksum_sha256="ab" * 32,
        row_counts={"public.a": 3, "public.b": 4},
    )
    disk = factories.DestinationFactory(organisation=organisation, name="Disk")
    factories.BackupCopyFactory(backup=backup, destination=disk, size=4096, key="a/b.zst")

    _, body = get(f"/api/backups/{backup.id}/progress", token_for(organisation, Role.VIEWER))
    [(name, data)] = parse(body)

    assert name == "done"
    result = data["result"]
    assert (result["size"], result["compression"], result["checksumSha256"]) == (
        4096,
        "zstd",
        "ab" * 32,
    )
    assert result["durationSec"] == 12.5 and result["tables"] == 2
    assert result["completedAt"] == backup.completed_at.isoformat()
    [copy] = result["copies"]
    assert copy["destination"] == "Disk" and copy["size"] == 4096 and copy["key"] == "a/b.zst"
    assert copy["status"] == "stored" and copy["statusLabel"] == "Stored"


@pytest.mark.django_db
def test_a_finished_restore_says_whether_it_can_be_undone(organisation, backup, token_for):
    safety = factories.BackupFactory(environment=backup.environment, size=2048)
    restore = factories.RestoreFactory(
        backup=backup, status="completed", safety_backup=safety, bytes_done=1024
    )
    _, body = get(f"/api/restores/{restore.id}/progress", token_for(organisation, Role.VIEWER))
    [(name, data)] = parse(body)

    assert name == "done"
    assert data["result"]["undoable"] is True and data["result"]["bytesRead"] == 1024
    assert data["result"]["safetyBackup"] == {
        "id": str(safety.id),
        "name": safety.name,
        "status": "completed",
        "statusLabel": "Completed",
        "size": 2048,
    }


@pytest.mark.django_db
def test_the_stream_ends_at_its_maximum_duration(
    organisation, environment, token_for, fast, monkeypatch
):
    monkeypatch.setattr(sse, "MAX_SECONDS", 0.2)
    running = factories.BackupFactory(environment=environment, status=BackupStatus.IN_PROGRESS)
    _, body = get(f"/api/backups/{running.id}/progress", token_for(organisation))
    assert [name for name, _ in parse(body)] == ["progress", "timeout"]
    assert sse.open_streams == 0


@pytest.mark.django_db
def test_the_stream_needs_a_token(backup):
    response, body = get(f"/api/backups/{backup.id}/progress")
    assert response.status_code == 401
    assert json.loads(body)["error"]["code"] == "unauthenticated"


@pytest.mark.django_db
def test_a_bad_token_is_a_401(backup):
    response, _ = get(f"/api/backups/{backup.id}/progress", "sbx_not-a-token")
    assert response.status_code == 401


@pytest.mark.django_db
def test_another_organisations_backup_is_not_found(other_organisation, backup, token_for):
    response, body = get(f"/api/backups/{backup.id}/progress", token_for(other_organisation))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_restore_progress_streams_from_the_restore_row(organisation, backup, token_for):
    restore = factories.RestoreFactory(backup=backup, status="failed", message="disk full")
    token = token_for(organisation, Role.VIEWER)
    for url in (
        f"/api/restores/{restore.id}/progress",
        f"/api/backups/{backup.id}/restore/progress",
    ):
        response, body = get(url, token)
        assert response.status_code == 200
        assert parse(body) == [
            (
                "failed",
                {
                    "status": "failed",
                    "phase": None,
                    "phases": [],
                    "bytesDone": 0,
                    "bytesTotal": None,
                    "percent": None,
                    "message": "disk full",
                    "etaSeconds": None,
                    "result": {
                        "bytesRead": 0,
                        "startedAt": None,
                        "completedAt": None,
                        "durationSec": None,
                        "safetyBackup": None,
                        "undoable": False,
                    },
                },
            )
        ]


@pytest.mark.django_db
def test_a_backup_never_restored_has_no_restore_stream(organisation, backup, token_for):
    response, _ = get(f"/api/backups/{backup.id}/restore/progress", token_for(organisation))
    assert response.status_code == 404
    assert not Restore.objects.exists()


@pytest.mark.django_db
def test_open_streams_share_one_poll(organisation, environment, token_for, fast, monkeypatch):
    running = [
        factories.BackupFactory(environment=environment, status=BackupStatus.IN_PROGRESS)
        for _ in range(8)
    ]
    batches = []
    load = sse.load_subjects

    def counting(subjects):
        batches.append(len(subjects))
        return load(subjects)

    monkeypatch.setattr(sse, "load_subjects", counting)
    token = token_for(organisation)

    async def streams():
        async def finish():
            # Finish once one read has served every stream, not after a fixed time: on a
            # loaded machine the streams may take longer than any fixed delay to open.
            async with asyncio.timeout(60):
                while len(running) not in batches:
                    await asyncio.sleep(0.01)
            await sync_to_async(Backup.objects.filter(pk__in=[b.pk for b in running]).update)(
                status=BackupStatus.COMPLETED
            )

        finishing = asyncio.create_task(finish())
        answers = await asyncio.gather(
            *[_get(f"/api/backups/{backup.id}/progress", token) for backup in running]
        )
        await finishing
        return answers

    answers = async_to_sync(streams)()
    for _, body in answers:
        assert [name for name, _ in parse(body)][-1] == "done"
    # A tick reads the rows of all the open streams at once (one query per kind): one read
    # answered all eight, where one read per stream would never hold more than one.
    assert max(batches) == len(running)
    assert sse.open_streams == 0


# --- the real ASGI handler: a client that goes away ------------------------------------------


async def _open_then_disconnect(path: str, token: str) -> tuple[list[dict], float]:
    app = ASGIHandler()
    incoming: asyncio.Queue = asyncio.Queue()
    sent: list[dict] = []
    first_body = asyncio.Event()
    await incoming.put({"type": "http.request", "body": b"", "more_body": False})

    async def receive():
        return await incoming.get()

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_body.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait_for(first_body.wait(), timeout=10)
    streams_while_open = sse.open_streams
    await incoming.put({"type": "http.disconnect"})
    await asyncio.wait_for(task, timeout=10)  # the handler returns instead of hanging
    return sent, streams_while_open


@pytest.mark.django_db(transaction=True)
def test_a_client_disconnect_ends_the_stream_without_leaking(
    organisation, environment, token_for, fast
):
    running = factories.BackupFactory(environment=environment, status=BackupStatus.IN_PROGRESS)
    sent, streams_while_open = async_to_sync(_open_then_disconnect)(
        f"/api/backups/{running.id}/progress", token_for(organisation)
    )
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream") in [
        (k.lower(), v) for k, v in sent[0]["headers"]
    ]
    assert b"event: progress" in sent[1]["body"]
    assert streams_while_open == 1
    assert sse.open_streams == 0
