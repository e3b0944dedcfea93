"""Secrets come from the environment, a file, or a systemd credential; never from the TOML.

A config names *where* a secret lives (``password = { credential = "caldav" }``) and the
value is read only when a source or notifier first needs it. Values never reach logs or
error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from syncd.errors import ConfigError


class SecretRef(BaseModel):
    """Exactly one of ``env``, ``file`` or ``credential`` (a name under $CREDENTIALS_DIRECTORY)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None
    credential: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("env", "file", "credential") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of env, file or credential")
        return self

    def describe(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return f"systemd credential {self.credential}"

    def get(self, environ: Mapping[str, str] | None = None) -> str:
        """Read the secret. Raises :class:`ConfigError` naming where it looked, not the value."""
        env = os.environ if environ is None else environ
        if self.env is not None:
            value = env.get(self.env)
            if not value:
                raise ConfigError(f"secret not set: {self.describe()} is empty or missing")
            return value
        if self.file is not None:
            path = self.file
        else:
            creds = env.get("CREDENTIALS_DIRECTORY")
            if not creds:
                raise ConfigError(
                    f"secret not available: {self.describe()} needs CREDENTIALS_DIRECTORY "
                    "(LoadCredential= in the systemd unit)"
                )
            path = Path(creds) / str(self.credential)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"secret not readable: {self.describe()}: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Never quote the offending byte: it is part of the secret.
            raise ConfigError(f"secret not readable: {self.describe()} is not UTF-8 text") from None
        # A trailing newline is almost always an editor artefact, never part of a password.
        value = text.rstrip("\r\n")
        if not value:
            raise ConfigError(f"secret not set: {self.describe()} is empty")
        return value
