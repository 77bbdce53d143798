"""How long an alert takes to reach a receiver, through the real django-q2 worker.

Measured from ``alert_raise`` returning (its transaction committed, the tasks enqueued) to
the loopback receiver reading the apprise json:// post. Printed past pytest's capture so
that the numbers show in every run.
"""

import statistics
import time

import pytest

from alerts.models import AlertKind, NotificationDelivery
from alerts.services import alert_raise
from tests import factories
from tests.fixtures.worker import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MEASURED = 20


def test_an_alert_reaches_an_apprise_receiver_within_seconds_through_the_worker(
    organisation, environment, webhook_receiver, start_worker, request
):
    factories.NotificationChannelFactory(
        organisation=organisation,
        kind="apprise",
        secret="",
        url=webhook_receiver.url.replace("http://", "json://"),
    )
    start_worker()
    latencies = []
    for n in range(MEASURED + 1):  # the first one warms the worker up and is not counted
        started = time.monotonic()
        alert_raise(
            organisation=organisation,
            kind=AlertKind.BACKUP_FAILED,
            severity="critical",
            title=f"Backup {n} failed",
            dedup_key=f"latency:{n}",
            environment=environment,
        )
        wait_for(lambda n=n: len(webhook_receiver.requests) > n, 60, 0.01, f"notice {n}")
        if n:
            latencies.append(webhook_receiver.requests[n].at - started)

    # The worker logs an attempt once the receiver has answered: wait for the last one.
    wait_for(
        lambda: NotificationDelivery.objects.filter(ok=True).count() == MEASURED + 1,
        30,
        0.05,
        "every attempt logged",
    )
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(  # noqa: T201
            f"\nnotification latency over {MEASURED} alerts (worker, apprise json://): "
            f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        )
    assert p95 < 10
