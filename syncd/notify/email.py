"""SMTP delivery with the standard library: one multipart/alternative message per digest."""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from email.header import Header
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate, make_msgid
from typing import Literal

from pydantic import Field, field_validator

from syncd.errors import NotifyError
from syncd.notify.base import Message, Notifier, NotifierOptions, Secret
from syncd.secrets import SecretRef

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class SmtpOptions(NotifierOptions):
    """``[smtp]``: the relay syncd's emails go through."""

    host: str = Field(description="SMTP server host.")
    port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="'starttls' (port 587), 'tls' (port 465) or 'none' (loopback relays only).",
    )
    username: str | None = Field(
        None, description="Login name at the relay; without it syncd sends without logging in."
    )
    password: SecretRef | None = Field(
        None, description="Where the SMTP password lives (needed with username)."
    )
    sender: str = Field(description="From: address of syncd's emails.")
    timeout: float = Field(
        30.0, gt=0, description="Seconds to wait for the relay before retrying later."
    )

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        if not _EMAIL.match(v):
            raise ValueError("not an email address")
        return v


_NOT_ATOM = re.compile(r"[^A-Za-z0-9_-]+")


def message_id(key: str | None, sender: str) -> str:
    """A Message-ID that is the same for every send of one idempotency key, so a receiving
    system can drop the duplicate of a re-send after a crash; a fresh one without a key."""
    domain = sender.rpartition("@")[2]
    if key is None:
        return make_msgid(domain=domain)
    # The readable part is sanitised to a dot-atom and capped; the hash of the raw key (and
    # sender, so two deployments never collide) keeps ids unique whatever the key holds.
    digest = hashlib.sha256(f"{key}\0{sender}".encode()).hexdigest()[:16]
    readable = _NOT_ATOM.sub("-", key)[:64].strip("-") or "m"
    return f"<{readable}.{digest}@{domain}>"


class _Policy(EmailPolicy):
    """The default policy, except that a non-ASCII Subject is folded by email.header.

    CPython's folder (3.11) drops the space between adjacent encoded words when it folds a
    long subject ("incomplete – £ é" arrives as "incomplete –£é"); Header encodes the whole
    text, spaces included, into words of at most 78-character lines.
    """

    def fold(self, name: str, value: str) -> str:
        if name.lower() == "subject" and not str(value).isascii():
            encoded: str = Header(str(value), "utf-8", header_name=name).encode(
                linesep=self.linesep
            )
            return f"{name}: {encoded}{self.linesep}"
        folded: str = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() == "subject" and not str(value).isascii():
            return self.fold(name, value).encode("ascii")
        folded: bytes = super().fold_binary(name, value)
        return folded


# CRLF as SMTP wants it; and no ">From " mangling, which smtplib.send_message does always.
_POLICY = _Policy(linesep="\r\n", mangle_from_=False)


class EmailNotifier(Notifier):
    """One multipart/alternative email per message, through the ``[smtp]`` relay."""

    kind = "email"
    Options = SmtpOptions

    def __init__(self, options: NotifierOptions, secret: Secret):
        assert isinstance(options, SmtpOptions)
        self.settings = options
        self._secret = secret

    def needed_secrets(self) -> tuple[str, ...]:
        return ("password",) if self.settings.username else ()

    def build(self, message: Message) -> EmailMessage:
        msg = EmailMessage(policy=_POLICY)
        msg["From"] = self.settings.sender
        msg["To"] = ", ".join(message.to)
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = message_id(message.key, self.settings.sender)
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(message.text)
        msg.add_alternative(message.html, subtype="html")
        return msg

    def send(self, message: Message) -> None:
        s = self.settings
        msg = self.build(message)
        try:
            smtp: smtplib.SMTP
            if s.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                if s.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if s.username:
                    smtp.login(s.username, self._secret("password"))
                refused = smtp.sendmail(s.sender, list(message.to), msg.as_bytes())
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(f"SMTP login refused ({exc.smtp_code})", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise NotifyError(
                f"SMTP refused every recipient ({', '.join(map(str, codes))})",
                permanent=all(c >= 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(
                f"SMTP error {exc.smtp_code}", permanent=exc.smtp_code >= 500
            ) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise NotifyError(
                f"SMTP server unreachable: {type(exc).__name__}", permanent=False
            ) from None
        if refused:
            # Some recipients took it; the refused ones are a configuration problem to fix.
            raise NotifyError(
                f"SMTP refused {len(refused)} of {len(message.to)} recipients", permanent=True
            )
