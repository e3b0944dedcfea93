"""``[[sources]] kind = "ews"`` options: one Exchange service account."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from syncd.secrets import SecretRef
from syncd.sources._deadline import deadline_field
from syncd.sources.base import SourceOptions

VERSIONS: dict[str, tuple[int, ...]] = {
    "Exchange2010": (14, 0),
    "Exchange2010_SP1": (14, 1),
    "Exchange2010_SP2": (14, 2),
    "Exchange2013": (15, 0),
    "Exchange2013_SP1": (15, 0, 847),
    "Exchange2016": (15, 1),
    "Exchange2019": (15, 2),
}

ExchangeVersion = Literal[
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2016",
    "Exchange2019",
]


class EwsOptions(SourceOptions):
    """``[[sources]]`` table for ``kind = "ews"``."""

    autodiscover: bool = Field(
        default=False,
        description="Find each mailbox's EWS endpoint by Autodiscover; give exactly one of this "
        "or service_endpoint.",
    )
    service_endpoint: str | None = Field(
        default=None,
        description="e.g. https://mail.example.org/EWS/Exchange.asmx; required unless "
        "autodiscover. Must be https (http only to a loopback address).",
    )
    version: ExchangeVersion | None = Field(
        default=None,
        description="Skips version guessing (one request fewer, and no surprises behind load "
        "balancers); none lets the server's version be detected.",
    )
    access_type: Literal["impersonation", "delegate"] = Field(
        default="impersonation",
        description="How the service account opens staff mailboxes: ApplicationImpersonation, "
        "or delegate access granted on each mailbox.",
    )
    auth_type: Literal["ntlm", "basic", "oauth"] = Field(
        default="ntlm",
        description="How the service account logs in: ntlm and basic need username and "
        "password; oauth needs client_id, tenant_id and client_secret.",
    )
    username: str = Field(
        default="",
        description="The service account's user name (for ntlm and basic), e.g. "
        "DOMAIN\\svc-syncd or svc-syncd@example.org.",
    )
    password: SecretRef | None = Field(
        default=None, description="Where the service account's password is kept (ntlm, basic)."
    )
    client_id: str = Field(
        default="", description="Application (client) ID of the Entra ID app (for oauth)."
    )
    tenant_id: str = Field(
        default="", description="Directory (tenant) ID of the Entra ID tenant (for oauth)."
    )
    client_secret: SecretRef | None = Field(
        default=None, description="Where the Entra ID app's client secret is kept (for oauth)."
    )
    verify_tls: bool = Field(
        default=True,
        description="Check the server's certificate (turn off only for a lab server).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="A PEM of the CA(s) that issued Exchange's certificate, instead of the "
        "system store.",
    )
    timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds of silence from Exchange before a request is abandoned.",
    )
    deadline_seconds: float = deadline_field("Exchange")
    max_connections: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Concurrent connections to Exchange (exchangelib's default is one).",
    )
    sync_page_size: int = Field(
        default=512,
        ge=1,
        le=512,
        description="MaxChangesReturned per SyncFolderItems request (512 is the EWS maximum).",
    )
    view_page_size: int = Field(
        default=500,
        ge=1,
        le=1000,
        description="MaxEntriesReturned per CalendarView request (Exchange's EWSFindCountLimit "
        "is 1000).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> EwsOptions:
        if self.autodiscover == (self.service_endpoint is not None):
            raise ValueError("give exactly one of autodiscover = true or service_endpoint")
        if self.service_endpoint is not None:
            parts = urlsplit(self.service_endpoint)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("service_endpoint must be an https:// URL")
            if parts.scheme == "http" and not _is_loopback(parts.hostname):
                raise ValueError("service_endpoint must use https (credentials travel with it)")
        if self.auth_type == "oauth":
            if not (self.client_id and self.tenant_id and self.client_secret):
                raise ValueError("auth_type oauth needs client_id, tenant_id and client_secret")
        elif not (self.username and self.password):
            raise ValueError(f"auth_type {self.auth_type} needs username and password")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
