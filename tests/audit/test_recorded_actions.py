"""Tokens, memberships, schedules, destinations, path grants, host policies, keys and
encryption settings are recorded by their services, whichever interface called them (the
API, the pages, the admin, the commands), with what changed and never a secret."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from audit.models import ActorType
from backups.age_format import generate_identity, identity_text
from organizations.models import Membership, Role
from tests import factories
from tests.audit.helpers import actions, events
from tests.fixtures.s3 import ACCESS_KEY, SECRET_KEY

pytestmark = pytest.mark.django_db


def test_a_token_created_and_revoked_on_the_page_is_recorded_without_its_value(
    client, owner, organisation, other_organisation
):
    client.force_login(owner)
    raw = client.post(reverse("api-tokens"), {"name": "CI", "role": "operator"}).context[
        "new_token_value"
    ]
    token = organisation.api_tokens.get(name="CI")
    client.post(reverse("api-token-revoke", args=[token.id]))
    client.post(reverse("api-token-revoke", args=[token.id]))  # already revoked: nothing new

    created, revoked = events(organisation, action__startswith="token.")
    assert (created.action, revoked.action) == ("token.create", "token.revoke")
    for event in (created, revoked):
        assert (event.actor_type, event.actor_name) == (ActorType.USER, "owner")
        assert (event.object_type, event.object_id, event.object_name) == (
            "token",
            str(token.id),
            "CI",
        )
        assert event.details["role"] == "operator"
        assert raw not in json.dumps(event.details)
    assert events(other_organisation) == []


def test_membership_changes_in_the_admin_are_recorded_with_the_role_before_and_after(
    client, django_user_model, organisation, viewer
):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    membership = Membership.objects.get(user=viewer)
    url = f"/admin/organizations/membership/{membership.pk}/change/"
    form = {
        "user": viewer.pk,
        "organisation": organisation.pk,
        "role": Role.OPERATOR,
        "source": "manual",
    }

    assert client.post(url, form).status_code == 302
    newcomer = factories.UserFactory(username="newcomer")
    add = {
        "user": newcomer.pk,
        "organisation": organisation.pk,
        "role": Role.VIEWER,
        "source": "manual",
    }
    assert client.post("/admin/organizations/membership/add/", add).status_code == 302
    added = Membership.objects.get(user=newcomer)
    delete = f"/admin/organizations/membership/{added.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 302

    changed, created, deleted = events(organisation, action__startswith="membership.")
    assert changed.action == "membership.change" and changed.object_name == "viewer"
    assert changed.details == {"before": {"role": "viewer"}, "after": {"role": "operator"}}
    assert (changed.actor_type, changed.actor_name) == (ActorType.USER, "root")
    assert created.action == "membership.create" and created.details == {"role": "viewer"}
    assert deleted.action == "membership.delete" and deleted.object_name == "newcomer"


def test_a_schedule_change_records_only_the_changed_fields_before_and_after(
    client_for, organisation, environment, destination
):
    admin = client_for(organisation, Role.ADMIN)
    url = f"/api/environments/{environment.id}/backup-schedule"
    body = {"dbCron": "0 2 * * *", "destinationIds": [str(destination.id)], "retainDaily": 7}
    assert admin.put(url, body, format="json").status_code == 200, admin.put(url, body).content
    assert admin.put(url, {**body, "retainDaily": 14}, format="json").status_code == 200
    assert admin.put(url, {**body, "retainDaily": 14}, format="json").status_code == 200

    created, updated = events(organisation, action__startswith="schedule.")
    assert created.action == "schedule.create"
    assert created.details["after"]["db_cron"] == "0 2 * * *"
    assert created.details["after"]["destination_ids"] == [str(destination.id)]
    assert updated.action == "schedule.update"  # the third, unchanged, is not recorded
    assert updated.details == {
        "environment_id": str(environment.id),
        "before": {"retain_daily": 7},
        "after": {"retain_daily": 14},
    }
    assert updated.object_type == "schedule" and updated.actor_name == "admin token"


@pytest.mark.s3
def test_destination_changes_name_which_secrets_changed_but_never_their_values(
    client_for, organisation, s3_server, s3_bucket
):
    admin = client_for(organisation, Role.ADMIN)
    body = {
        "name": "Offsite",
        "kind": "s3",
        "parameters": {
            "bucket": s3_bucket,
            "region": "us-east-1",
            "endpoint_url": s3_server.endpoint,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
        },
    }
    response = admin.post("/api/backup-destinations", body, format="json")
    assert response.status_code == 201, response.content
    url = f"/api/backup-destinations/{response.json()['id']}"
    new_secret = "another-secret-value-0123456789"
    changed = {"name": "Offsite 2", "parameters": {"secret_access_key": new_secret}}
    assert admin.patch(url, changed, format="json").status_code == 200
    assert admin.delete(url).status_code in (200, 204)

    created, updated, deleted = events(organisation, action__startswith="destination.")
    assert created.action == "destination.create"
    assert created.details["parameters"]["bucket"] == s3_bucket
    assert created.details["sensitive_parameters"] == ["access_key_id", "secret_access_key"]
    assert updated.details["before"] == {"name": "Offsite"}
    assert updated.details["after"] == {"name": "Offsite 2"}
    assert updated.details["sensitive_parameters_changed"] == ["secret_access_key"]
    assert deleted.action == "destination.delete" and deleted.object_name == "Offsite 2"
    stored = json.dumps([e.details for e in (created, updated, deleted)])
    assert SECRET_KEY not in stored and new_secret not in stored


def test_path_grants_and_host_policies_set_by_the_operator_are_recorded(
    organisation, tmp_path, client, django_user_model
):
    share = tmp_path / "share"
    share.mkdir()
    call_command("grant_path", "quant-gov", str(share), "--note", "their NFS share")
    call_command("grant_path", "quant-gov", str(share), "--revoke")
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    form = {"organisation": organisation.pk, "allowed_hosts": "db.example.com\n10.0.0.0/8"}
    assert client.post("/admin/organizations/hostpolicy/add/", form).status_code == 302

    granted, revoked, policy = events(organisation)
    assert (granted.action, revoked.action) == ("path_grant.create", "path_grant.revoke")
    assert granted.object_name == str(share.resolve()) and granted.actor_type == ActorType.SYSTEM
    assert granted.details == {"note": "their NFS share"}
    assert policy.action == "host_policy.set" and policy.actor_name == "root"
    assert policy.details["after"] == {"allowed_hosts": ["db.example.com", "10.0.0.0/8"]}


def test_key_rotation_is_recorded_for_the_installation(organisation, settings):
    call_command("rotate_keys", "--check")  # a dry run changes nothing and records nothing
    assert actions() == []

    call_command("rotate_keys")

    (rotated,) = events(action="keys.rotate")
    assert rotated.organisation_id is None and rotated.actor_type == ActorType.SYSTEM
    assert set(rotated.details) == {"master_keys", "rotated_count", "current_count"}


def test_age_settings_record_recipients_and_that_an_identity_was_set_never_the_identity(
    client_for, organisation
):
    generated = generate_identity()
    identity, recipient = identity_text(generated), generated.recipient
    admin = client_for(organisation, Role.ADMIN)
    response = admin.patch(
        f"/api/organizations/{organisation.id}/encryption",
        {"recipients": [recipient], "identity": identity},
        format="json",
    )
    assert response.status_code == 200, response.content

    (event,) = events(organisation, action="encryption.update")
    assert event.details["after"] == {"recipients": [recipient]}
    assert event.details["own_decryption"] == "set"
    assert "AGE-SECRET-KEY" not in json.dumps(event.details)


def test_channel_changes_in_the_admin_are_recorded_without_the_webhook_path_or_key(
    client, django_user_model, organisation
):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    hook = "https://hooks.example.com/services/T0/B0/sEcReTtOkEn"
    form = {
        "organisation": organisation.pk,
        "name": "Ops hook",
        "kind": "webhook",
        "url": hook,
        "secret": "k1",
        "min_severity": "info",
        "enabled": "on",
    }
    assert client.post("/admin/alerts/notificationchannel/add/", form).status_code == 302
    channel = organisation.notification_channels.get()
    change = f"/admin/alerts/notificationchannel/{channel.pk}/change/"
    assert client.post(change, {**form, "secret": "k2"}).status_code == 302
    delete = f"/admin/alerts/notificationchannel/{channel.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 302

    created, updated, deleted = events(organisation, action__startswith="channel.")
    assert created.action == "channel.create"
    assert created.details["after"]["url"] == "https://hooks.example.com/…"
    assert updated.details == {"before": {}, "after": {}, "signing_key_changed": True}
    assert deleted.action == "channel.delete"
    stored = json.dumps([e.details for e in (created, updated, deleted)]) + deleted.object_name
    assert "sEcReTtOkEn" not in stored and "k2" not in stored


def test_schedule_and_destination_changes_in_the_admin_are_recorded_too(
    client, django_user_model, organisation, environment, destination
):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    schedule = factories.ScheduleFactory(environment=environment, retain_daily=7)
    url = f"/admin/schedules/schedule/{schedule.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name != "destinations"
    }
    data.update(
        {
            "environment": environment.pk,
            "retain_daily": 10,
            "destinations": [destination.pk],
            "interval_rules-TOTAL_FORMS": 0,
            "interval_rules-INITIAL_FORMS": 0,
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors

    (changed,) = events(organisation, action="schedule.update")
    assert changed.details["before"]["retain_daily"] == 7
    assert changed.details["after"]["retain_daily"] == 10
    assert changed.details["after"]["destination_ids"] == [str(destination.id)]

    delete = f"/admin/destinations/destination/{destination.pk}/delete/"
    schedule.destinations.clear()
    assert client.post(delete, {"post": "yes"}).status_code == 302
    (deleted,) = events(organisation, action="destination.delete")
    assert deleted.object_id == str(destination.pk) and deleted.actor_name == "root"
