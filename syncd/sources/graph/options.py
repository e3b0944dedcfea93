"""``[[sources]] kind = "graph"`` options: one Entra ID app registration in one tenant."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from syncd.secrets import SecretRef
from syncd.sources._deadline import deadline_field
from syncd.sources.base import SourceOptions


class GraphOptions(SourceOptions):
    """``[[sources]] kind = "graph"``: one Entra ID app registration in one tenant."""

    tenant_id: str = Field(
        min_length=1, description="Directory (tenant) ID of the Entra ID tenant."
    )
    client_id: str = Field(
        min_length=1, description="Application (client) ID of the app registration."
    )
    client_secret: SecretRef | None = Field(
        default=None,
        description="Where the app's client secret is kept; give exactly one of this or "
        "certificate.",
    )
    certificate: SecretRef | None = Field(
        default=None,
        description="Where a PEM holding the app's private key and its certificate is kept "
        "(instead of a secret).",
    )
    authority_host: str = Field(
        default="https://login.microsoftonline.com",
        description="Entra ID login host that issues tokens (another for a national cloud); "
        "https only.",
    )
    graph_url: str = Field(
        default="https://graph.microsoft.com/v1.0",
        description="Base URL of the Graph API, with its version (another for a national "
        "cloud); https only.",
    )
    verify_tls: bool = Field(
        default=True,
        description="Check Graph's and Entra ID's TLS certificates (turn off only for a lab).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="A PEM of the CA(s) to trust for Graph and Entra ID, instead of the system "
        "store (e.g. for a TLS-inspecting proxy).",
    )
    proxy: str | None = Field(
        default=None,
        description="URL of the HTTP proxy for Graph and Entra ID requests; none connects "
        "directly (the environment's proxy settings are ignored).",
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds of silence from Graph or Entra ID before a request is abandoned.",
    )
    deadline_seconds: float = deadline_field(
        "Microsoft Graph (a $batch of up to 20 calendars counts as one sync)"
    )
    page_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Events asked for per page of results (odata.maxpagesize).",
    )
    max_retries: int = Field(
        default=4,
        ge=0,
        le=10,
        description="Retries of a throttled request (HTTP 429, 503, 504) before the sync "
        "fails and is rescheduled.",
    )
    max_retry_wait: float = Field(
        default=120.0,
        ge=0,
        description="Longest wait, in seconds, slept on before a throttling retry. A longer "
        "Retry-After, or one past deadline_seconds, is not slept on: the error carries it to "
        "the scheduler.",
    )

    @model_validator(mode="after")
    def _check(self) -> GraphOptions:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret or certificate")
        for key in ("authority_host", "graph_url"):
            if urlsplit(getattr(self, key)).scheme != "https":
                raise ValueError(f"{key} must be an https:// URL (bearer tokens travel on it)")
        return self
