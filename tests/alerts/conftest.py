"""Real receivers on loopback for notification tests: an HTTP server and an SMTP sink,
each in a thread on an ephemeral 127.0.0.1 port, plus a peek into django-q2's queue."""

from __future__ import annotations

import ast
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from django_q.models import Schedule

from alerts.services import DELIVERY_TASK
from tests.fixtures.queue import queued_tasks


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived (for latencies)


@dataclass
class WebhookReceiver:
    url: str
    requests: list[ReceivedRequest] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def respond_with(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, then 200."""
        self.statuses.extend(statuses)


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(ReceivedRequest(self.path, dict(self.headers), body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            reply = b"ok" if status < 400 else b"receiver is unwell"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hooks/strongbox"
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_url():
    """A loopback URL where nothing listens: the port was bound once, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[dict] = field(default_factory=list)


@pytest.fixture
def smtp_sink():
    """Just enough SMTP (RFC 5321) to accept mail from Django's SMTP backend."""
    sink = SmtpSink("127.0.0.1", 0)

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self):
            envelope = {"from": None, "to": [], "data": b""}
            self.reply("220 sink ESMTP")
            while line := self.rfile.readline():
                command = line.decode().strip()
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.reply("250 sink")
                elif verb == "MAIL":
                    envelope["from"] = command.split(":", 1)[1].strip(" <>")
                    self.reply("250 OK")
                elif verb == "RCPT":
                    envelope["to"].append(command.split(":", 1)[1].strip(" <>"))
                    self.reply("250 OK")
                elif verb == "DATA":
                    self.reply("354 End with <CRLF>.<CRLF>")
                    data = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                    envelope["data"] = b"".join(data)
                    sink.messages.append(dict(envelope))
                    self.reply("250 OK queued")
                elif verb == "QUIT":
                    self.reply("221 Bye")
                    return
                else:
                    self.reply("250 OK")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    sink.port = server.server_address[1]
    yield sink
    server.shutdown()
    server.server_close()


@pytest.fixture
def queued_deliveries():
    """queued_deliveries() -> [(func, args)] of delivery tasks waiting in the broker."""

    def read():
        return [(t["func"], t["args"]) for t in queued_tasks() if t["func"] == DELIVERY_TASK]

    return read


@pytest.fixture
def scheduled_retries():
    """scheduled_retries() -> [(schedule, args)] of delivery attempts scheduled for later."""

    def read():
        schedules = Schedule.objects.filter(func=DELIVERY_TASK).order_by("next_run")
        return [(s, ast.literal_eval(s.args)) for s in schedules]

    return read


@dataclass
class MailServer:
    """A real SMTP server (aiosmtpd) on loopback and what it received."""

    host: str
    port: int
    envelopes: list = field(default_factory=list)


@pytest.fixture
def mail_server():
    server = MailServer("127.0.0.1", 0)

    class Handler:
        async def handle_DATA(self, _server, _session, envelope):  # noqa: N802 (aiosmtpd's)
            server.envelopes.append(envelope)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server.port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname=server.host, port=server.port)
    controller.start()
    yield server
    controller.stop()
