"""A loopback TCP proxy a test can slow down, cut and bring back.

Put in front of the S3-protocol server it makes an upload last long enough to be
interrupted, and ``stop()`` is an outage seen from the worker (refused connections, reset
transfers) while the server keeps its state, so a test can then look for the multipart
uploads an interrupted upload left behind. (moto keeps everything in memory: stopping the
server itself forgets every bucket and upload, which would make that check vacuous.)
``pause()`` holds every transfer where it is (connections stay open) until ``resume()``:
an upload that provably cannot finish meanwhile.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

from tests.fixtures.s3 import free_port


class ThrottledProxy:
    def __init__(self, upstream_port: int, *, bytes_per_second: int = 0):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bytes_per_second = bytes_per_second
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()

    def pause(self) -> None:
        """Forward nothing more, in either direction, until resume()."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def start(self) -> ThrottledProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and reset every open one."""
        self._flowing.set()  # paused transfers go on to find their sockets closed
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            open_sockets, self._sockets = self._sockets, set()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                # Linger 0: close() sends a RST, as a crashed server's kernel would.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            threading.Thread(
                target=self._pump, args=(client, upstream, self.bytes_per_second), daemon=True
            ).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: int) -> None:
        started = time.monotonic()
        sent = 0
        try:
            while True:
                data = source.recv(64 * 1024)
                if not data:
                    break
                self._flowing.wait()
                sink.sendall(data)
                sent += len(data)
                if rate:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
