"""exchangelib's exceptions -> :class:`~syncd.errors.SourceError` with our own words.

Library messages may quote the server's response (names, addresses): they are logged at
DEBUG only, and every message here is built from the error class alone.
"""

from __future__ import annotations

import logging

from syncd.errors import AuthError, SourceError
from syncd.sources._tls import tls_failure

log = logging.getLogger(__name__)


def translate(name: str, access_type: str, exc: Exception) -> SourceError:
    log.debug("EWS error from %s", name, exc_info=exc)
    from exchangelib import errors as e

    kind = type(exc).__name__
    tls = tls_failure(exc)
    if tls is not None:
        return SourceError(f"{name}: Exchange: {tls}", permanent=True)
    if isinstance(exc, e.UnauthorizedError):
        return AuthError(f"{name}: Exchange rejected the service account's credentials")
    if isinstance(exc, e.ErrorImpersonateUserDenied | e.ErrorImpersonationDenied):
        return AuthError(
            f"{name}: the service account may not impersonate this mailbox "
            "(ApplicationImpersonation role or its management scope)"
        )
    if isinstance(exc, e.ErrorAccessDenied):
        return AuthError(
            f"{name}: access to this calendar was denied ({kind}); check the "
            f"{access_type} permission"
        )
    if _caused_by(exc, e.ErrorTimeoutExpired):
        # exchangelib re-raises a timeout or refused connection as ErrorServerBusy when it
        # has more than one session; it is still an unreachable server, not a busy one.
        return SourceError(f"{name}: cannot reach Exchange (timeout or refused)")
    if isinstance(exc, e.ErrorNonExistentMailbox | e.ErrorFolderNotFound):
        return SourceError(f"{name}: mailbox or calendar not found", permanent=True)
    if isinstance(exc, e.ErrorServerBusy):
        wait = exc.back_off if exc.back_off else 60.0
        return SourceError(f"{name}: Exchange is busy; retry later", retry_after=wait)
    if isinstance(exc, e.RateLimitError):
        return SourceError(f"{name}: Exchange is throttling us", retry_after=exc.wait)
    if isinstance(exc, e.CASError):
        return SourceError(
            f"{name}: the Exchange front end refused the request ({kind})", permanent=True
        )
    if isinstance(exc, e.RedirectError):
        return SourceError(
            f"{name}: Exchange redirected the request; check service_endpoint",
            permanent=True,
        )
    if isinstance(exc, e.MalformedResponseError | e.SOAPError | e.ErrorSchemaValidation) or (
        kind in ("ParseError", "XMLSyntaxError")
    ):
        return SourceError(f"{name}: Exchange sent a malformed response ({kind})")
    if isinstance(exc, e.TransportError | e.ResponseMessageError | e.EWSError):
        return SourceError(f"{name}: Exchange request failed ({kind})")
    if isinstance(exc, OSError):
        return SourceError(f"{name}: cannot reach Exchange ({kind})")
    return SourceError(f"{name}: Exchange sent a response syncd cannot read ({kind})")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
