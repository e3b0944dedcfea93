"""A TLS-terminating reverse proxy, as the council puts in front of syncd's webhook: HTTPS
on a loopback port (certificate from a ``trustme`` CA) forwarded byte for byte to syncd's
plain-HTTP ``listen`` address."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

import trustme


class TlsProxy:
    def __init__(self, ca: trustme.CA, backend: tuple[str, int]):
        self.backend = backend
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._ctx)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(10)
            client = self._ctx.wrap_socket(raw, server_side=True)
            upstream = socket.create_connection(self.backend, timeout=10)
        except OSError:
            raw.close()
            return
        self._conns += [client, upstream]
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
