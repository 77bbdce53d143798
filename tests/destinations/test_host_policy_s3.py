"""S3 endpoints under the host policy, against moto's S3 server on loopback: refused when
saved, refused when a client is built (the connection test, a backup), and a connection
test that says no more than "not reachable" about an endpoint that does not answer."""

import pytest

from backups.models import BackupStatus, CopyStatus
from destinations import services as destination_services
from destinations.models import Destination
from organizations.services import host_policy_set
from tests import factories
from tests.backups.helpers import database_for, restore_database_artifact, run_backup_now
from tests.fixtures.databases import fill_sqlite, table_checksums
from tests.fixtures.s3 import ACCESS_KEY, SECRET_KEY, free_port, s3_destination_config

pytestmark = [pytest.mark.django_db, pytest.mark.s3]

LOOPBACK = ["127.0.0.0/8", "::1/128"]


def _s3_body(endpoint, bucket="backups"):
    return {
        "name": "Offsite",
        "kind": "s3",
        "parameters": {
            "bucket": bucket,
            "region": "us-east-1",
            "endpoint_url": endpoint,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
        },
    }


def _s3_destination(organisation, s3_server, bucket):
    config, secrets = s3_destination_config(s3_server, bucket)
    factories.DestinationFactory(
        organisation=organisation, kind="s3", config=config, secrets=secrets, name="S3"
    )
    # Read back as every caller reads it: with the organisation's policy entries.
    return Destination.objects.get(organisation=organisation, name="S3")


def _test(client_for, organisation, destination):
    return client_for(organisation).post(f"/api/backup-destinations/{destination.id}/test").json()


def test_saving_a_metadata_endpoint_is_a_400_naming_the_parameter(client_for, organisation):
    response = client_for(organisation).post(
        "/api/backup-destinations", _s3_body("http://169.254.169.254/latest"), format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["parameters.endpoint_url"]


def test_saving_an_endpoint_outside_the_policy_is_refused_and_inside_it_accepted(
    client_for, organisation, s3_server
):
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    client = client_for(organisation)
    refused = client.post("/api/backup-destinations", _s3_body(s3_server.endpoint), format="json")
    assert refused.status_code == 400
    assert "parameters.endpoint_url" in refused.json()["error"]["fields"]

    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    assert (
        client.post("/api/backup-destinations", _s3_body(s3_server.endpoint), format="json")
    ).status_code == 201


def test_an_endpoint_url_that_is_not_http_is_refused(client_for, organisation):
    response = client_for(organisation).post(
        "/api/backup-destinations", _s3_body("file:///etc/passwd"), format="json"
    )
    assert response.status_code == 400
    assert "parameters.endpoint_url" in response.json()["error"]["fields"]


def test_the_connection_test_follows_the_policy_as_it_is_when_the_test_runs(
    client_for, organisation, s3_server, s3_bucket, monkeypatch
):
    monkeypatch.setattr(destination_services, "UNREACHABLE_ANSWER_SECONDS", 0.2)
    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    destination = _s3_destination(organisation, s3_server, s3_bucket)
    assert _test(client_for, organisation, destination)["ok"] is True

    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    body = _test(client_for, organisation, destination)
    assert (body["ok"], body["step"], body["message"]) == (
        False,
        "connect",
        "connect failed: not reachable",
    )
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=s3_bucket)


def test_a_closed_port_and_a_refused_host_get_the_same_answer_in_about_the_same_time(
    client_for, organisation, s3_server, s3_bucket, monkeypatch
):
    # A minimum well above what either test costs even on a loaded machine, so both end at
    # it (a 1 s minimum was overrun under a load of 8 on 2 cores).
    monkeypatch.setattr(destination_services, "UNREACHABLE_ANSWER_SECONDS", 3.0)
    # Allowed by name, nothing listening: the connection is refused by the kernel.
    closed = factories.DestinationFactory(
        organisation=organisation,
        kind="s3",
        config={"bucket": s3_bucket, "region": "us-east-1",
                "endpoint_url": f"http://localhost:{free_port()}"},
        secrets={"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
    )  # fmt: skip
    # A live S3 server that would answer, at an address the policy refuses.
    refused = _s3_destination(organisation, s3_server, s3_bucket)
    host_policy_set(organisation=organisation, allowed_hosts=["localhost"])

    answers = [_test(client_for, organisation, d) for d in (closed, refused)]

    assert [(a["ok"], a["step"], a["message"]) for a in answers] == [
        (False, "connect", "connect failed: not reachable")
    ] * 2
    durations = [a["durationMs"] for a in answers]
    assert all(3000 <= d < 10000 for d in durations), durations
    assert abs(durations[0] - durations[1]) < 1000, durations


def test_an_s3_error_from_a_reachable_endpoint_is_still_reported(
    client_for, organisation, s3_server
):
    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    destination = _s3_destination(organisation, s3_server, "no-such-bucket")
    body = _test(client_for, organisation, destination)
    assert body["ok"] is False and "NoSuchBucket" in body["message"]


def test_a_backup_to_s3_is_stored_when_allowed_and_refused_when_the_policy_excludes_it(
    organisation, environment, s3_server, s3_bucket, sqlite_spec, make_sqlite_database
):
    fill_sqlite(sqlite_spec, rows=50)
    database = database_for(environment, sqlite_spec)
    host_policy_set(organisation=organisation, allowed_hosts=LOOPBACK)
    destination = _s3_destination(organisation, s3_server, s3_bucket)
    request = {"environment": environment, "kind": "database", "database": database,
               "destination_ids": [str(destination.id)]}  # fmt: skip

    stored = run_backup_now(**request)
    assert stored.status == BackupStatus.COMPLETED, stored.message
    target = make_sqlite_database()
    restore_database_artifact(stored, target)
    assert table_checksums(target) == table_checksums(sqlite_spec)

    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    refused = run_backup_now(**request)
    assert refused.status == BackupStatus.FAILED
    copy = refused.copies.get()
    assert copy.status != CopyStatus.STORED
    assert "may reach" in copy.error
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == [f"backups/{stored.copies.get().key}"]
