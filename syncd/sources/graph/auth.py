"""App-only tokens for Microsoft Graph from Microsoft Entra ID, through msal.

msal talks to Entra ID over its own ``requests`` session, built here with the source's CA,
TLS and proxy settings. Errors name the AADSTS code and what an IT admin should check,
never Entra ID's description text (it carries trace ids and, for some codes, the app name).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import msal
import requests

from syncd.errors import AuthError, ConfigError, SourceError
from syncd.sources._deadline import spent_or
from syncd.sources._tls import TlsAdapter, tls_context, tls_failure
from syncd.sources.graph.options import GraphOptions
from syncd.sources.graph.replies import SAFE_CODE

_AADSTS = re.compile(r"AADSTS(\d{5,7})")
# What an IT admin should check for the commonest Entra ID refusals.
_AADSTS_HINTS = {
    "7000215": "invalid client secret (use the secret's Value, not its ID)",
    "7000222": "the client secret has expired: create a new one",
    "700016": "no such application (client_id) in this tenant",
    "90002": "no such tenant (tenant_id)",
    "900023": "tenant_id is not a valid tenant",
    "700027": "the certificate signature was rejected: upload the certificate to the app",
    "700024": "the client assertion is outside its validity window: check the clock",
    "7000229": "the app has no service principal in this tenant: grant admin consent",
    "53003": "blocked by a Conditional Access policy",
}


class Tokens:
    """One msal confidential client per source, made on first use. Thread-safe."""

    def __init__(self, name: str, opts: GraphOptions, secret: Callable[[str], str], scope: str):
        self.name, self.opts, self._secret, self._scope = name, opts, secret, scope
        self._lock = threading.Lock()
        self._app: Any = None
        self._session: requests.Session | None = None

    def token(self) -> str:
        app = self._msal()
        try:
            result = app.acquire_token_for_client(scopes=[self._scope])
        except requests.RequestException as exc:
            raise spent_or(transport_error(self.name, "Microsoft Entra ID", exc)) from None
        except Exception as exc:
            # msal/PyJWT reject a malformed or non-RSA key with assorted exception types.
            raise spent_or(
                AuthError(f"{self.name}: the app credential is unusable ({type(exc).__name__})")
            ) from None
        if isinstance(result, dict) and isinstance(result.get("access_token"), str):
            return str(result["access_token"])
        raise token_error(self.name, result if isinstance(result, dict) else {})

    def drop(self) -> None:
        """Forget the cached token (a 401 said it was revoked or expired)."""
        with self._lock:
            app = self._app
        if app is not None:
            app.remove_tokens_for_client()

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
            self._app = None

    def _msal(self) -> Any:
        with self._lock:
            if self._app is not None:
                return self._app
            session = requests.Session()
            session.trust_env = False  # else REQUESTS_CA_BUNDLE silently overrides verify=
            context = tls_context(verify_tls=self.opts.verify_tls, ca_file=self.opts.ca_file)
            for prefix in list(session.adapters):
                session.mount(prefix, TlsAdapter(context))
            if self.opts.proxy:
                session.proxies = {"https": self.opts.proxy}
            authority = f"{self.opts.authority_host.rstrip('/')}/{self.opts.tenant_id}"
            try:
                app = msal.ConfidentialClientApplication(
                    self.opts.client_id,
                    client_credential=self._credential(),
                    authority=authority,
                    http_client=session,
                    instance_discovery=False,
                    timeout=self.opts.timeout,
                )
            except requests.RequestException as exc:
                session.close()
                raise spent_or(transport_error(self.name, "Microsoft Entra ID", exc)) from None
            except ValueError:
                session.close()
                # msal's own text names the authority URL; ours says what to check.
                raise spent_or(
                    AuthError(
                        f"{self.name}: Microsoft Entra ID does not know tenant_id or authority_host"
                    )
                ) from None
            self._session, self._app = session, app
            return app

    def _credential(self) -> str | dict[str, str]:
        try:
            if self.opts.client_secret is not None:
                return self._secret("client_secret")
            pem = self._secret("certificate")
        except ConfigError as exc:
            raise AuthError(f"{self.name}: {exc}") from None
        key = re.search(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", pem, re.S
        )
        cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
        if key is None or cert is None:
            raise AuthError(
                f"{self.name}: the certificate PEM needs both the private key and the certificate"
            )
        # Given the certificate, msal signs with PS256 and the SHA-256 thumbprint.
        return {"private_key": key.group(0), "public_certificate": cert.group(0)}


def transport_error(name: str, service: str, exc: Exception) -> SourceError:
    tls = tls_failure(exc)
    if tls is not None:
        return SourceError(f"{name}: {service}: {tls}", permanent=True)
    if isinstance(exc, requests.Timeout):
        return SourceError(f"{name}: {service} timed out")
    return SourceError(f"{name}: cannot reach {service} ({type(exc).__name__})")


def token_error(name: str, result: Mapping[str, Any]) -> SourceError:
    error = str(result.get("error") or "no error code")
    if not SAFE_CODE.match(error):
        error = "unreadable error"
    match = _AADSTS.search(str(result.get("error_description") or ""))
    code = match.group(1) if match else ""
    hint = _AADSTS_HINTS.get(code, "check tenant_id, client_id and the credential")
    where = f"{error}, AADSTS{code}" if code else error
    if error in {"temporarily_unavailable", "server_error"}:
        return SourceError(f"{name}: Microsoft Entra ID is unavailable ({where})")
    return AuthError(f"{name}: Microsoft Entra ID refused the app credentials ({where}): {hint}")
