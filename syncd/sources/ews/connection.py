"""exchangelib's Configuration and one Account per mailbox, made lazily and kept.

exchangelib runs with its FailFast policy, so ``ErrorServerBusy`` surfaces at once (see
:mod:`syncd.sources.ews.source`), and its session pool never shrinks on errors: exchangelib
would drop to one session for good after a fault, and every calendar would then queue behind
the slowest. Addressing the calendar by its distinguished id skips
GetFolder on the mailbox root, which a delegate holding only Reviewer may not read.

TLS: exchangelib goes through requests, which trusts certifi's bundle (plus
``REQUESTS_CA_BUNDLE``), and its documented hook, ``BaseProtocol.HTTP_ADAPTER_CLS``, is one
class attribute for the whole process. Instead each source gets its own protocol object
(:func:`_protocol_class`), not in exchangelib's process-wide cache, whose sessions mount a
:class:`~syncd.sources._tls.TlsAdapter` with the source's ``verify_tls``/``ca_file``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from syncd.errors import SourceError, SyncdError
from syncd.sources._tls import TlsAdapter, tls_context
from syncd.sources.ews.options import VERSIONS, EwsOptions

log = logging.getLogger(__name__)


class Connection:
    """No I/O until :meth:`calendar`; thread-safe (the engine syncs from worker threads)."""

    def __init__(self, name: str, opts: EwsOptions, secret: Callable[[str], str]):
        self.name, self.opts, self._secret = name, opts, secret
        self._config: Any = None
        self._accounts: dict[str, tuple[Any, Any]] = {}
        self._protocols: dict[str, Any] = {}  # service endpoint -> this source's protocol
        self._lock = threading.Lock()

    def calendar(self, locator: str) -> tuple[Any, Any]:
        """(account, calendar folder) for a mailbox; no request unless autodiscover is on."""
        with self._lock:
            cached = self._accounts.get(locator)
            if cached is None:
                cached = self._accounts[locator] = self._open(locator)
            return cached

    def close(self) -> None:
        with self._lock:
            protocols = list(self._protocols.values())
            self._accounts.clear()
            self._protocols.clear()
        for protocol in protocols:
            try:
                protocol.close()
            except Exception:
                log.debug("closing EWS sessions failed", exc_info=True)

    def _configuration(self) -> Any:
        if self._config is not None:
            return self._config
        from exchangelib import (
            BASIC,
            NTLM,
            OAUTH2,
            Build,
            Configuration,
            Credentials,
            OAuth2Credentials,
            Version,
        )

        o = self.opts
        try:
            if o.auth_type == "oauth":
                credentials: Any = OAuth2Credentials(
                    client_id=o.client_id,
                    client_secret=self._secret("client_secret"),
                    tenant_id=o.tenant_id,
                )
            else:
                credentials = Credentials(o.username, self._secret("password"))
        except SourceError:
            raise
        except SyncdError as exc:
            # A secret that cannot be read is a configuration fault a human must fix.
            raise SourceError(f"{self.name}: {exc}", permanent=True) from None
        auth = {"ntlm": NTLM, "basic": BASIC, "oauth": OAUTH2}[o.auth_type]
        version = Version(build=Build(*VERSIONS[o.version])) if o.version else None
        self._config = Configuration(
            credentials=credentials,
            service_endpoint=o.service_endpoint,
            auth_type=auth,
            version=version,
            retry_policy=_fail_fast_class()(),
            max_connections=o.max_connections,
        )
        return self._config

    def _open(self, locator: str) -> tuple[Any, Any]:
        from exchangelib import DELEGATE, IMPERSONATION, Account
        from exchangelib import UTC as EWS_UTC
        from exchangelib.folders import Calendar, DistinguishedFolderId, Root
        from exchangelib.properties import Mailbox

        if "@" not in locator:
            raise SourceError(f"{self.name}: locator is not a mailbox address", permanent=True)
        config = self._configuration()
        account = Account(
            primary_smtp_address=locator,
            access_type=IMPERSONATION if self.opts.access_type == "impersonation" else DELEGATE,
            config=config,
            autodiscover=self.opts.autodiscover,
            default_timezone=EWS_UTC,
            locale="en_GB",
        )
        # Account made exchangelib's shared, cached protocol (no request yet); ours replaces
        # it before anything is sent. With autodiscover, one per endpoint it found.
        account.protocol = self._protocol(account.protocol.config)
        folder = Calendar(
            root=Root(account=account),
            _distinguished_id=DistinguishedFolderId(
                id="calendar", mailbox=Mailbox(email_address=locator)
            ),
        )
        return account, folder

    def _protocol(self, config: Any) -> Any:
        endpoint = str(config.service_endpoint)
        protocol = self._protocols.get(endpoint)
        if protocol is None:
            context = tls_context(verify_tls=self.opts.verify_tls, ca_file=self.opts.ca_file)
            protocol = _protocol_class()(config=config, tls=context)
            protocol.TIMEOUT = self.opts.timeout
            self._protocols[endpoint] = protocol
        return protocol


@functools.cache
def _fail_fast_class() -> type:
    """exchangelib's FailFast, keeping the server's Retry-After on a 503 (FailFast drops it
    and exchangelib would then say "back off 10 s" whatever the server asked)."""
    from exchangelib.errors import ErrorInternalServerTransientError, ErrorServerBusy
    from exchangelib.protocol import FailFast

    class KeepRetryAfter(FailFast):  # type: ignore[misc]
        def raise_response_errors(self, response: Any) -> None:
            try:
                super().raise_response_errors(response)
            except (ErrorInternalServerTransientError, ErrorServerBusy) as exc:
                wait = _seconds(response.headers.get("Retry-After"))
                if wait is None:
                    raise
                raise ErrorServerBusy(str(exc), back_off=wait) from None

    return KeepRetryAfter


def _seconds(value: str | None) -> float | None:
    try:
        wait = float(value) if value is not None else 0.0
    except ValueError:
        return None  # an HTTP-date: the engine's own backoff applies
    return wait if wait > 0 else None


@functools.cache
def _protocol_class() -> type:
    """exchangelib's Protocol with this source's TLS, outside its process-wide cache."""
    from exchangelib.errors import SessionPoolMinSizeReached
    from exchangelib.protocol import CachingProtocol, Protocol

    class Uncached(CachingProtocol):  # type: ignore[misc]
        def __call__(cls, *args: Any, **kwargs: Any) -> Any:
            return type.__call__(cls, *args, **kwargs)

    class TlsProtocol(Protocol, metaclass=Uncached):  # type: ignore[misc]
        def __init__(self, *args: Any, tls: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.tls = tls

        def decrease_poolsize(self) -> None:
            # Its callers then raise at once (FailFast) instead of retrying on fewer sessions.
            raise SessionPoolMinSizeReached("syncd keeps its session pool")

        def raw_session(self, prefix: str, *args: Any, **kwargs: Any) -> Any:
            session = super().raw_session(prefix, *args, **kwargs)
            # Not the host's REQUESTS_CA_BUNDLE or proxies: only the source's settings.
            session.trust_env = False
            for mounted in list(session.adapters):
                session.mount(
                    mounted,
                    TlsAdapter(
                        self.tls,
                        pool_block=True,
                        pool_connections=self.CONNECTIONS_PER_SESSION,
                        pool_maxsize=self.CONNECTIONS_PER_SESSION,
                        max_retries=0,
                    ),
                )
            return session

    return TlsProtocol
