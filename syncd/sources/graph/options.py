"""``[[sources]] kind = "graph"`` options: one Entra ID app registration in one tenant."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from syncd.secrets import SecretRef
from syncd.sources.base import SourceOptions


class GraphOptions(SourceOptions):
    """``[[sources]] kind = "graph"``: one Entra ID app registration in one tenant."""

    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretRef | None = None
    certificate: SecretRef | None = None
    """A PEM holding the app's private key and its certificate (instead of a secret)."""
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com/v1.0"
    verify_tls: bool = True
    ca_file: Path | None = None
    proxy: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=100, ge=1, le=1000)
    max_retries: int = Field(default=4, ge=0, le=10)
    max_retry_wait: float = Field(default=120.0, ge=0)
    """A longer Retry-After is not slept on: the error carries it to the scheduler."""

    @model_validator(mode="after")
    def _check(self) -> GraphOptions:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret or certificate")
        for key in ("authority_host", "graph_url"):
            if urlsplit(getattr(self, key)).scheme != "https":
                raise ValueError(f"{key} must be an https:// URL (bearer tokens travel on it)")
        return self
