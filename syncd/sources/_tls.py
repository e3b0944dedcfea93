"""One TLS policy for every source, and TLS failures told apart from other failures.

* :func:`tls_context`: the operating system's trust store by default, ``ca_file`` instead
  when given, no checking with ``verify_tls = false``; the process environment never
  widens trust.
* :class:`TlsAdapter`: the same context for libraries that go through ``requests``
  (exchangelib, msal), whose own default is certifi's bundle. Its connections also answer
  to the call's deadline (:mod:`syncd.sources._deadline`).
* :func:`tls_failure`: a plain sentence for a TLS failure, or None.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from requests.adapters import HTTPAdapter

from syncd.sources._watch import watch_pools

__all__ = ["TlsAdapter", "tls_context", "tls_failure"]


def tls_context(*, verify_tls: bool = True, ca_file: Path | None = None) -> ssl.SSLContext:
    """The one TLS policy of every source.

    By default the operating system's trust store (where an admin installs the council's
    internal CA), not certifi's bundle, and not whatever ``SSL_CERT_FILE`` or
    ``REQUESTS_CA_BUNDLE`` the process happens to inherit. ``ca_file`` replaces the store;
    ``verify_tls = false`` turns checking off.
    """
    if not verify_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    # OpenSSL's compiled-in locations, read directly: load_default_certs() would honour
    # SSL_CERT_FILE/SSL_CERT_DIR from the environment instead.
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile or "") else None
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath or "") else None
    if cafile is None and capath is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=cafile, capath=capath)


_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "PACKET_LENGTH")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests and urllib3 nest them in args)."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]


def tls_failure(exc: BaseException) -> str | None:
    """What went wrong, in plain words, if ``exc`` is a TLS failure; None if it is not.

    A TLS failure needs a human (the caller raises it as permanent), and each kind needs a
    different fix, so an https:// URL pointing at a plain-HTTP port is not reported as an
    untrusted certificate.
    """
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = e.verify_message or "unverifiable"
            return (
                f"the server's TLS certificate was refused ({detail}); install the issuing "
                "CA in the system trust store or set ca_file"
            )
        if isinstance(e, ssl.SSLError):
            text = f"{e.reason or ''} {e}".upper().replace(" ", "_")
            if any(mark in text for mark in _NOT_TLS):
                return (
                    "the server did not answer in TLS; is the URL https:// to a plain "
                    "HTTP port? Check its scheme and port"
                )
            return f"the TLS handshake failed ({e.reason or type(e).__name__})"
    return None


class TlsAdapter(HTTPAdapter):
    """A requests adapter that verifies with the given context, whatever ``verify`` says.

    requests' own ``verify`` can only name a CA file (certifi's by default) and is widened
    by ``REQUESTS_CA_BUNDLE`` when a session trusts the environment; mounting this adapter
    makes the source's :func:`tls_context` the whole truth.
    """

    def __init__(self, context: ssl.SSLContext, **kwargs: Any):
        self._context = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        watch_pools(manager)
        return manager

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> Any:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        kwargs: dict[str, Any] = {
            k: v for k, v in pool.items() if k not in ("ca_certs", "ca_cert_dir")
        }
        kwargs["ssl_context"] = self._context
        kwargs["cert_reqs"] = self._cert_reqs()
        return host, kwargs

    def _cert_reqs(self) -> str:
        return "CERT_NONE" if self._context.verify_mode == ssl.CERT_NONE else "CERT_REQUIRED"

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # The base class would point the connection at certifi's bundle; the context
        # already holds the trust anchors.
        conn.cert_reqs = self._cert_reqs()
        conn.ca_certs = None
        conn.ca_cert_dir = None
