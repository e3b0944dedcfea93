"""The configuration: one TOML file, validated by pydantic, errors naming the key.

Secrets are never values in the TOML: a key such as ``password`` holds a table naming where
the secret lives (``{ env = "..." }``, ``{ file = "..." }`` or ``{ credential = "..." }``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from syncd import notify, sources
from syncd.domain.rules import RulesConfig
from syncd.errors import ConfigError
from syncd.notify.base import Notifier
from syncd.notify.email import SmtpOptions
from syncd.secrets import SecretRef
from syncd.sources.base import SourceOptions

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


Email = Annotated[str, AfterValidator(_check_email)]


class CalendarRef(_Strict):
    source: str = Field(description="Name of a [[sources]] entry.")
    locator: str = Field(
        description="Where this calendar lives in that source: a CalDAV collection path, "
        "a mailbox address (Exchange, Microsoft 365), or an ICS file, folder or URL."
    )


class Staff(_Strict):
    id: str = Field(
        description="Stable, non-identifying id (e.g. a staff number). It is the only "
        "staff identifier that appears in logs."
    )
    name: str = Field(description="Display name, shown to monitors and managers only.")
    email: str | None = Field(None, description="Where nudges go, if nudges are on.")
    phone: str | None = Field(None, description="Work mobile, for escalations.")
    calendar: CalendarRef = Field(description="The worker's calendar: a source and a locator.")

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 64)")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        return None if v is None else _check_email(v)


class Team(_Strict):
    name: str = Field(description="Team name, used in emails.")
    monitors: list[Email] = Field(
        min_length=1, description="Email addresses of the team's designated monitor(s)."
    )
    managers: list[Email] = Field(
        default_factory=list, description="Named managers, for escalations."
    )
    staff: list[Staff] = Field(default_factory=list, description="The team's workers.")


class OfficeHours(_Strict):
    start: time = Field(time(8, 30), description="Start of office hours, local time.")
    end: time = Field(time(17, 0), description="End of office hours, local time.")
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS[:5]),
        description="Working days.",
    )


class Notify(_Strict):
    morning_report: time | None = Field(
        time(7, 30),
        description="Local time of the daily report of today's and tomorrow's incomplete "
        "entries; omit to disable.",
    )
    nudge_staff: bool = Field(False, description="Also email the worker whose entry is incomplete.")
    settle_minutes: int = Field(
        15,
        ge=0,
        le=240,
        description="How long a new finding is held back after the entry changed, so a "
        "worker saving an entry in stages is not reported (a finding fixed within this time "
        "is never mentioned); a visit starting sooner is reported at once. 0 reports at once.",
    )


class Webhook(_Strict):
    """``[webhook]``: Microsoft Graph change notifications, so a corrected entry is seen within
    seconds instead of at the next poll. Polling carries on regardless."""

    listen: str = Field(
        "127.0.0.1:8089",
        description="host:port syncd's notification endpoint listens on (plain HTTP): keep "
        "it on loopback behind the reverse proxy that terminates HTTPS.",
    )
    public_url: str = Field(
        description="The https:// URL at which Microsoft Graph reaches that endpoint through "
        "the reverse proxy (e.g. https://syncd.council.example); Graph POSTs to "
        "<public_url>/graph/notifications and <public_url>/graph/lifecycle."
    )
    client_state: SecretRef = Field(
        description="Where the shared secret Graph echoes in every notification lives (1 to "
        "128 characters, e.g. openssl rand -hex 32); never the secret itself."
    )
    lifetime_minutes: int = Field(
        4230,
        ge=60,
        le=4230,
        description="Lifetime asked for each subscription (Graph's maximum for Outlook "
        "events is 4230 minutes); syncd renews once a third of it is left.",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("use host:port, e.g. 127.0.0.1:8089")
        return v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https:// URL (Graph delivers to public HTTPS only)")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return v.rstrip("/")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def notification_url(self) -> str:
        return f"{self.public_url}/graph/notifications"

    @property
    def lifecycle_url(self) -> str:
        return f"{self.public_url}/graph/lifecycle"

    @property
    def lifetime(self) -> timedelta:
        return timedelta(minutes=self.lifetime_minutes)


class SourceConfig(BaseModel):
    """``[[sources]]``: name and kind here; every other key belongs to the backend's options."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(description="Name that staff calendars refer to (calendar.source).")
    kind: str = Field(description="The backend: caldav, ics, ews or graph.")


class Config(_Strict):
    timezone: str = Field(
        "Europe/London",
        description="IANA time zone of the teams; Outlook's Windows zone names inside "
        "entries are mapped.",
    )
    database: str = Field(
        "sqlite:///syncd.db",
        description="SQLAlchemy URL of the state database. Relative SQLite paths are under "
        "$STATE_DIRECTORY when systemd sets it. PostgreSQL: postgresql+psycopg://user@host/db "
        "(install syncd[postgresql]).",
    )
    poll_interval: int = Field(60, ge=10, le=3600, description="Seconds between sync cycles.")
    lookahead_days: int = Field(
        28, ge=1, le=366, description="Days ahead (from today) that are checked."
    )
    concurrency: int = Field(4, ge=1, le=32, description="Calendars synced at once.")
    blind_after: int = Field(
        3,
        ge=1,
        description="Consecutive failed reads before a calendar is reported as a blind spot "
        "(authentication failures are reported at once).",
    )
    empty_grace_minutes: int = Field(
        60,
        ge=0,
        description="How long a calendar that suddenly returns nothing keeps its "
        "previous entries before the emptiness is accepted.",
    )
    metrics_file: Path | None = Field(
        None,
        description="Write Prometheus metrics here after each cycle (for node_exporter's "
        "textfile collector), e.g. /var/lib/prometheus/node-exporter/syncd.prom.",
    )
    office_hours: OfficeHours = Field(
        default_factory=OfficeHours, description="When the team's workers are at work."
    )
    smtp: SmtpOptions | None = Field(
        None, description="Outgoing mail relay; without it nobody is told."
    )
    webhook: Webhook | None = Field(
        None,
        description="Optional Microsoft Graph change notifications; omit to poll only. See "
        "docs/microsoft-365.md.",
    )
    notify: Notify = Field(default_factory=Notify, description="What is sent, and when.")
    rules: RulesConfig = Field(
        default_factory=RulesConfig,
        description="Widen visit recognition, add or tighten rules (see syncd/domain/rules.py).",
    )
    sources: list[SourceConfig] = Field(
        default_factory=list, description="The calendar servers, feeds and tenants read."
    )
    teams: list[Team] = Field(
        default_factory=list, description="Each team: its monitors, managers and staff."
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Europe/London)"
            ) from None
        return v

    @model_validator(mode="after")
    def _references(self) -> Config:
        names = [s.name for s in self.sources]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise ValueError(f"sources[{i}].name: duplicate source name {name!r}")
        seen: set[str] = set()
        for ti, team in enumerate(self.teams):
            for si, staff in enumerate(team.staff):
                where = f"teams[{ti}].staff[{si}]"
                if staff.id in seen:
                    raise ValueError(f"{where}.id: duplicate staff id {staff.id!r}")
                seen.add(staff.id)
                if staff.calendar.source not in names:
                    raise ValueError(
                        f"{where}.calendar.source: no [[sources]] entry named {staff.calendar.source!r}"
                    )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def empty_grace(self) -> timedelta:
        return timedelta(minutes=self.empty_grace_minutes)

    def source_options(self, index: int) -> SourceOptions:
        """Validate one ``[[sources]]`` table against its backend's options model."""
        sc = self.sources[index]
        cls = sources.load(sc.kind)
        try:
            return cls.Options.model_validate(sc.model_extra or {})
        except ValidationError as exc:
            raise ConfigError(_first_error(exc, prefix=f"sources[{index}]")) from None


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    err = exc.errors()[0]
    loc = prefix
    for part in err["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    if err["type"] in ("model_type", "model_attributes_type") and loc.endswith(
        ("password", "client_secret", "secret", "client_state")
    ):
        msg = 'must name where the secret lives, e.g. { env = "NAME" } or { credential = "name" }; never the secret itself'
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{loc}: {msg}{suffix}" if loc else f"{msg}{suffix}"


def parse_config(data: dict[str, Any], origin: str = "config") -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_first_error(exc)}") from None
    for i in range(len(cfg.sources)):
        try:
            cfg.source_options(i)
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    return cfg


def load_config(path: Path | str) -> Config:
    """Read and validate a TOML config. Raises :class:`ConfigError` naming the file and key."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: config is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, origin=str(p))


CHANNEL_TABLES: dict[str, str] = {"smtp": "email"}
"""Config table -> the notification channel whose options it holds."""


def _secret_reader(table: str, options: BaseModel) -> Callable[[str], str]:
    def read(field: str) -> str:
        ref = getattr(options, field, None)
        if not isinstance(ref, SecretRef):
            raise ConfigError(f"{table}.{field}: not configured")
        try:
            value: str = ref.get()
        except ConfigError as exc:
            raise ConfigError(f"{table}.{field}: {exc}") from None
        return value

    return read


def build_notifier(cfg: Config) -> Notifier | None:
    """The configured delivery channel, built through the registry; None when there is none.

    Secrets the channel reads on every send are read now: without the relay's password nobody
    would ever be told anything, so the start fails naming the key, not the first alert.
    """
    for table, kind in CHANNEL_TABLES.items():
        options = getattr(cfg, table)
        if options is None:
            continue
        read = _secret_reader(table, options)
        notifier = notify.load(kind)(options, read)
        for field in notifier.needed_secrets():
            read(field)
        return notifier
    return None


def default_config() -> Config:
    """The embedded defaults, used by ``syncd check`` when no config file is given."""
    return Config()
