"""Local CalDAV servers (Radicale, Xandikos) for the demo, the tests and the bench.

Each server runs in a child process (``python -m syncd.app.devserver KIND ...``) so that it
neither shares our GIL nor counts towards our memory in measurements. The child binds
port 0, prints the port it got, and the parent then polls the socket until it accepts
connections. Development use only: plain HTTP on 127.0.0.1, plain-text passwords.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PORT_PREFIX = "SYNCD-DEVSERVER-PORT "


@dataclass
class DevServer:
    """A running server. ``url`` ends with "/"; ``stop()`` is idempotent."""

    kind: str
    url: str
    storage_dir: Path
    htpasswd: Path
    process: subprocess.Popen[bytes]

    def set_users(self, users: Mapping[str, str]) -> None:
        """Replace the accounts (both servers re-read the file on each login)."""
        _write_htpasswd(self.htpasswd, users, hashed=self.kind == "xandikos")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> DevServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_radicale(
    storage_dir: Path, users: Mapping[str, str], *, timeout: float = 30.0
) -> DevServer:
    """Radicale with htpasswd auth (plain text) and owner-only rights.

    Collections live at ``/<user>/<calendar>/`` under ``storage_dir/collections``.
    """
    storage_dir.mkdir(parents=True, exist_ok=True)
    htpasswd = storage_dir / "htpasswd"
    _write_htpasswd(htpasswd, users, hashed=False)
    config = storage_dir / "radicale.conf"
    config.write_text(
        # Radicale refuses port 0 in its config; the child rebinds this placeholder to 0.
        "[server]\nhosts = 127.0.0.1:1\nmax_connections = 64\n"
        "[auth]\ntype = htpasswd\n"
        f"htpasswd_filename = {htpasswd}\nhtpasswd_encryption = plain\n"
        # Radicale waits a second after a wrong password by default; tests test exactly that.
        "delay = 0\n"
        "[rights]\ntype = owner_only\n"
        f"[storage]\nfilesystem_folder = {storage_dir / 'collections'}\n"
        "[web]\ntype = none\n"
        "[logging]\nlevel = warning\nmask_passwords = True\n",
        encoding="utf-8",
    )
    return _spawn("radicale", [str(config)], storage_dir, htpasswd, timeout)


def start_xandikos(
    storage_dir: Path, users: Mapping[str, str], *, timeout: float = 30.0
) -> DevServer:
    """Xandikos (single principal ``/user/``) behind its own htpasswd Basic-auth middleware.

    Calendars live at ``/user/calendars/<name>/``.
    """
    storage_dir.mkdir(parents=True, exist_ok=True)
    htpasswd = storage_dir / "htpasswd"
    _write_htpasswd(htpasswd, users, hashed=True)
    data = storage_dir / "data"
    return _spawn("xandikos", [str(data), str(htpasswd)], storage_dir, htpasswd, timeout)


def _write_htpasswd(path: Path, users: Mapping[str, str], *, hashed: bool) -> None:
    lines = []
    for user, password in users.items():
        if hashed:  # Xandikos accepts bcrypt or {SHA}; {SHA} needs no extra package.
            digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
            lines.append(f"{user}:{{SHA}}{digest}\n")
        else:
            lines.append(f"{user}:{password}\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a server never reads half a file


def _spawn(
    kind: str, args: list[str], storage_dir: Path, htpasswd: Path, timeout: float
) -> DevServer:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    # The server's own log goes to a file: it would clutter the demo's terminal.
    with open(storage_dir / "server.log", "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd.app.devserver", kind, *args],
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        port = _read_port(proc, timeout)
        _wait_listening(port, proc, timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return DevServer(kind, f"http://127.0.0.1:{port}/", storage_dir, htpasswd, proc)


def _read_port(proc: subprocess.Popen[bytes], timeout: float) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=deadline - time.monotonic()):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith(_PORT_PREFIX):
                    return int(line[len(_PORT_PREFIX) :])
    raise RuntimeError(f"dev server did not start (exit code {proc.poll()}; see server.log)")


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dev server exited with code {proc.returncode}; see server.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)  # polling a local socket, not waiting on time
    raise RuntimeError("dev server did not accept connections in time")


# --- child side ---------------------------------------------------------------------------


def _announce(port: int) -> None:
    sys.stdout.write(f"{_PORT_PREFIX}{port}\n")
    sys.stdout.flush()


def _run_radicale(config_path: str) -> None:
    import socketserver

    from radicale import config, log, server

    # Radicale's server closes each connection after one request and the default backlog
    # of 5 drops SYNs under ~6 concurrent clients, stalling them ~1 s each.
    socketserver.TCPServer.request_queue_size = 128
    original_bind = server.ParallelHTTPServer.server_bind

    def bind_and_announce(self: Any) -> None:
        self.server_address = (self.server_address[0], 0)
        original_bind(self)
        _announce(self.server_address[1])

    server.ParallelHTTPServer.server_bind = bind_and_announce  # type: ignore[method-assign]
    log.setup()
    configuration = config.load([(config_path, False)])
    log.set_level(configuration.get("logging", "level"), False)
    server.serve(configuration)


def _run_xandikos(data_dir: str, htpasswd_path: str) -> None:
    import asyncio
    import importlib
    import logging

    from aiohttp import web

    # Any: xandikos is only partly annotated, and this is dev tooling.
    xweb: Any = importlib.import_module("xandikos.web")
    htpasswd_mod: Any = importlib.import_module("xandikos.htpasswd")

    logging.basicConfig(level=logging.WARNING)
    principal = "/user/"
    backend = xweb.SingleUserFilesystemBackend(os.path.abspath(data_dir), autocreate=True)
    backend._mark_as_principal(principal)
    os.makedirs(data_dir, exist_ok=True)
    if not backend.get_resource(principal):
        backend.create_principal(principal, create_defaults=False)
    dav = xweb.XandikosApp(backend, current_user_principal=principal)

    async def handler(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await dav.aiohttp_handler(request, "/")
        return response

    middleware = xweb.basic_auth_middleware(htpasswd_mod.HtpasswdFile(htpasswd_path))
    app = web.Application(middlewares=[middleware])
    app.router.add_route("*", "/{path_info:.*}", handler)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=128)
        await site.start()
        server: Any = site._server
        _announce(server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(serve())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m syncd.app.devserver")
    parser.add_argument("kind", choices=["radicale", "xandikos"])
    parser.add_argument("args", nargs="+")
    ns = parser.parse_args(argv)
    if ns.kind == "radicale":
        _run_radicale(ns.args[0])
    else:
        _run_xandikos(ns.args[0], ns.args[1])


if __name__ == "__main__":
    main()
