"""Fixtures of the fault-injection tests: an S3 server of their own behind a proxy they
can slow down and cut, and a Redis broker they can kill and restart."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
import redis

from tests import factories
from tests.fixtures.databases import unavailable
from tests.fixtures.s3 import MotoServer, free_port, s3_destination_config
from tests.reliability.helpers import MiB
from tests.reliability.proxy import ThrottledProxy

# Multipart parts of 5 MiB (S3's minimum) so that a few tens of MiB make several parts.
PART_SIZE_MB = 5


@pytest.fixture
def own_s3_server():
    """Not the session's server: a fault test may stop this one."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = MotoServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_proxy(own_s3_server):
    """The worker reaches S3 through this: ~2 MiB/s per connection, so uploads take seconds."""
    proxy = ThrottledProxy(own_s3_server.port, bytes_per_second=2 * MiB).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxied_s3_destination(organisation, own_s3_server, s3_proxy):
    bucket = f"sbx-fault-{uuid.uuid4().hex[:10]}"
    own_s3_server.client().create_bucket(Bucket=bucket)
    config, secrets = s3_destination_config(own_s3_server, bucket)
    config.update(endpoint_url=s3_proxy.endpoint, part_size_mb=str(PART_SIZE_MB))
    return factories.DestinationFactory(
        organisation=organisation, name="Offsite S3", kind="s3", config=config, secrets=secrets
    )


class RedisServer:
    """A redis-server of the test's own, without persistence: a restart loses its queue."""

    def __init__(self, workdir):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            unavailable("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.kill()
        unavailable("redis-server did not start within 10 s")
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path, monkeypatch):
    """A Redis broker for this test alone; what this process enqueues goes there too."""
    from django.conf import settings
    from django_q import tasks
    from django_q.brokers.redis_broker import Redis

    if "redis" not in settings.Q_CLUSTER:
        pytest.skip(
            "the ORM broker keeps its queue in the app database: there is no broker "
            "process to restart (runs on the Redis profile)"
        )
    server = RedisServer(tmp_path).start()
    broker = Redis()
    broker.connection = redis.Redis.from_url(server.url)
    monkeypatch.setattr(tasks, "get_broker", lambda *args, **kwargs: broker)
    yield server
    server.kill()
