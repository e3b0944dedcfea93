"""A TLS-terminating reverse proxy, as the council puts in front of syncd's webhook (or in
front of an Exchange server): HTTPS on a loopback port (certificate from a ``trustme`` CA)
forwarded byte for byte to a plain-HTTP backend.

It runs on asyncio in one background thread. An earlier version pumped each direction in
its own thread over one ``ssl.SSLSocket``; OpenSSL does not allow a read and a write on the
same connection at once, and about one request in a thousand lost its response body."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading

import trustme


class TlsProxy:
    def __init__(self, ca: trustme.CA, backend: tuple[str, int], *, host: str = "127.0.0.1"):
        self.backend = backend
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._ctx)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, host, 0, ssl=self._ctx), self._loop
        ).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.backend)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, up_w), _pipe(up_r, client_w))

    def close(self) -> None:
        async def shut() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        # Either side ending ends the connection (what the threaded version did).
        with contextlib.suppress(Exception):
            dst.close()
