"""The one error hierarchy of syncd.

Everything the CLI can turn into a one-line message derives from :class:`SyncdError`.
Messages must never contain personal data (names, addresses, phone numbers): they
reach logs and stderr.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""

    exit_code = 2


class ConfigError(SyncdError):
    """The configuration file is missing, unreadable or invalid. The message names the key."""


class InputError(SyncdError):
    """A calendar file or payload cannot be read or parsed. The message names the file."""


class SourceError(SyncdError):
    """A calendar source could not be read.

    ``permanent`` says whether retrying without a human changing something is pointless
    (bad credentials, missing calendar) or may succeed (timeout, server busy).
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class AuthError(SourceError):
    """The source rejected our credentials or we lack permission."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class SyncStateExpired(SourceError):
    """The stored incremental sync state is no longer valid; sync again from scratch."""

    def __init__(self, message: str = "sync state expired"):
        super().__init__(message, permanent=False)


class NotifyError(SyncdError):
    """A notification could not be delivered. ``permanent`` as for :class:`SourceError`."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class StoreError(SyncdError):
    """The state database cannot be opened or migrated."""
