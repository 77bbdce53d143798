"""Fixtures of the fault-injection tests: an S3 server of their own behind a proxy they
can slow down and cut."""

from __future__ import annotations

import os
import uuid

import pytest

from tests import factories
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
