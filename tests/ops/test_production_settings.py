"""The production profile: it refuses to start without a master key unless unencrypted
backups are allowed, never encrypts stored secrets with SECRET_KEY, and passes
``manage.py check --deploy`` without warnings (HTTPS only, HSTS, secure cookies, a strong
key), with a switch for a TLS-terminating proxy that redirects itself.

Each case imports the settings in a fresh interpreter with exactly the environment given,
as a deployment would start.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
K1 = "production-master-key-5c1e"
# Long and varied enough for Django's security.W009 (50 characters, 5 distinct).
STRONG_SECRET_KEY = "vN3q-8zR_kT1wYb6LpXe0sJd4HuMa9Gc2FiQo7Vy5ZrWn-Ks8Bt1Dx"


def _production_env(tmp_path, environment: dict[str, str]) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("STRONGBOX_", "DJANGO_"))
        and name not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="production-secret-key-one",
        DATABASE_URL="postgres://strongbox@127.0.0.1:5432/strongbox",
        REDIS_URL="redis://127.0.0.1:6379/15",
        STRONGBOX_VAR_DIR=str(tmp_path / "var"),
    )
    env.update(environment)
    return env


def run_production(tmp_path, code: str, **environment: str) -> subprocess.CompletedProcess:
    program = "import django\ndjango.setup()\n" + code
    return subprocess.run(  # noqa: S603 - our own interpreter, a fixed program
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=_production_env(tmp_path, environment),
        capture_output=True,
        text=True,
    )


def check_deploy(tmp_path, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own interpreter, a fixed argv
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(tmp_path, environment),
        capture_output=True,
        text=True,
    )


def test_production_refuses_to_start_without_a_master_key(tmp_path):
    result = run_production(tmp_path, "print('started')")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "Set STRONGBOX_MASTER_KEY (or STRONGBOX_MASTER_KEY_FILE) in production" in result.stderr
    assert "STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS=1" in result.stderr


def test_production_starts_without_a_master_key_when_unencrypted_backups_are_allowed(tmp_path):
    code = "from backups.keys import backups_encrypted\nprint('encrypted', backups_encrypted())"
    result = run_production(tmp_path, code, STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS="1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "encrypted False"


# In the production profile: which broker django-q2 builds, and how long a task it is handed
# waits before a consumer already waiting on it has it (five hand-offs, the median).
HAND_OFF = """
import statistics, threading, time, uuid
from django.conf import settings
from django_q.brokers import get_broker
broker = get_broker()
print(type(broker).__module__, "orm" in settings.Q_CLUSTER, settings.Q_CLUSTER["redis"])
queue = f"handoff-{uuid.uuid4().hex}"
broker = get_broker(queue)
name = f"consumer-{uuid.uuid4().hex[:8]}"
waits = []
for _ in range(5):
    got = []
    consumer = get_broker(queue)
    consumer.connection.client_setname(name)
    thread = threading.Thread(target=lambda: got.append((consumer.dequeue(), time.monotonic())))
    thread.start()
    deadline = time.monotonic() + 10
    while not any(c.get("name") == name and c.get("cmd") == "blpop"
                  for c in broker.connection.client_list()):
        assert time.monotonic() < deadline, "the consumer never waited"
        time.sleep(0.001)
    pushed = time.monotonic()
    broker.enqueue("task")
    thread.join(10)
    assert got[0][0], "the consumer got nothing"
    waits.append(got[0][1] - pushed)
    consumer.connection.client_setname("")
broker.delete_queue()
print(statistics.median(waits))
"""


def test_production_hands_tasks_to_waiting_workers_through_redis_without_a_poll(tmp_path):
    result = run_production(tmp_path, HAND_OFF, STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS="1")

    assert result.returncode == 0, result.stderr
    broker_line, wait = result.stdout.strip().splitlines()
    # django-q2's Redis broker pops with BLPOP: Q_CLUSTER's poll is the ORM broker's alone.
    assert broker_line == "django_q.brokers.redis_broker False redis://127.0.0.1:6379/15"
    assert float(wait) < 0.1


def test_production_starts_with_several_master_keys_from_a_file(tmp_path):
    key_file = tmp_path / "master-keys"
    key_file.write_text(f"new-master-key-a7\n{K1}\n")
    code = "from config.keyring import master_keys\nprint(len(master_keys()))"
    result = run_production(tmp_path, code, STRONGBOX_MASTER_KEY_FILE=str(key_file))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"


ENCRYPT = "from organizations.fields import encrypt_text\nprint(encrypt_text('db-password'))"
DECRYPT = "from organizations.fields import decrypt_text\nprint(decrypt_text({!r}))"


@pytest.mark.parametrize(
    "keys",
    [
        {"STRONGBOX_MASTER_KEY": K1},
        {"STRONGBOX_ALLOW_UNENCRYPTED_BACKUPS": "1"},  # secrets: under the generated local key
    ],
    ids=["master-key", "unencrypted-backups"],
)
def test_stored_secrets_survive_a_secret_key_rotation_in_production(tmp_path, keys):
    written = run_production(tmp_path, ENCRYPT, **keys)
    assert written.returncode == 0, written.stderr
    value = written.stdout.strip()

    read = run_production(
        tmp_path, DECRYPT.format(value), DJANGO_SECRET_KEY="production-secret-key-two", **keys
    )

    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "db-password"


# --- HTTPS only -----------------------------------------------------------------------------

DEPLOYED = {"DJANGO_SECRET_KEY": STRONG_SECRET_KEY, "STRONGBOX_MASTER_KEY": K1}


@pytest.mark.parametrize("redirect", ["1", "0"], ids=["tls-redirect", "proxy-redirects"])
def test_check_deploy_passes_without_warnings(tmp_path, redirect):
    result = check_deploy(tmp_path, STRONGBOX_TLS_REDIRECT=redirect, **DEPLOYED)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (" in result.stdout, result.stdout


def test_check_deploy_fails_on_a_weak_secret_key(tmp_path):
    result = check_deploy(tmp_path, **{**DEPLOYED, "DJANGO_SECRET_KEY": "short-but-not-insecure"})

    assert result.returncode != 0
    assert "security.W009" in result.stderr


# A plain-HTTP request (and one a proxy says came over HTTPS) through the whole middleware
# stack and URL map, as Django's test client makes it: status and headers, one line each.
REQUESTS = """
from django.test import Client

client = Client(raise_request_exception=False)
for path, extra in [
    ("/health/live", {}),
    ("/health/ready", {}),
    ("/metrics", {}),
    ("/login/", {}),
    ("/login/", {"HTTP_X_FORWARDED_PROTO": "https"}),
]:
    response = client.get(path, **extra)
    hsts = response.headers.get("Strict-Transport-Security", "-")
    proto = extra.get("HTTP_X_FORWARDED_PROTO", "http")
    print(proto, path, response.status_code, response.headers.get("Location", "-"), hsts, sep="|")
"""
HSTS = "max-age=31536000; includeSubDomains; preload"


def _answers(tmp_path, **environment) -> dict[tuple[str, str], tuple[str, str, str]]:
    result = run_production(
        tmp_path, REQUESTS, DJANGO_ALLOWED_HOSTS="testserver", **DEPLOYED, **environment
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|") for line in result.stdout.strip().splitlines()]
    return {(proto, path): (status, location, hsts) for proto, path, status, location, hsts in rows}


def test_plain_http_is_redirected_to_https_except_the_health_and_metrics_probes(tmp_path):
    answers = _answers(tmp_path)

    assert answers["http", "/login/"] == ("301", "https://testserver/login/", "-")
    for probe in ("/health/live", "/health/ready", "/metrics"):
        status, location, _ = answers["http", probe]
        assert location == "-" and not status.startswith("3"), (probe, status)
    assert answers["http", "/health/live"][0] == "200"
    # Forwarded by a TLS-terminating proxy: secure, not redirected, and told to stay on HTTPS.
    status, location, hsts = answers["https", "/login/"]
    assert (status, location, hsts) == ("200", "-", HSTS)


def test_with_the_proxy_switch_plain_http_is_not_redirected(tmp_path):
    answers = _answers(tmp_path, STRONGBOX_TLS_REDIRECT="0")

    assert answers["http", "/login/"] == ("200", "-", "-")
    assert answers["https", "/login/"] == ("200", "-", HSTS)
