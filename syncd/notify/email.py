"""SMTP delivery with the standard library: one multipart/alternative message per digest."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ..config import Smtp
from ..errors import NotifyError
from .base import Message, Notifier


class EmailNotifier(Notifier):
    def __init__(self, settings: Smtp, secret: Callable[[str], str]):
        self.settings = settings
        self._secret = secret

    def build(self, message: Message) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.sender
        msg["To"] = ", ".join(message.to)
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.settings.sender.rpartition("@")[2])
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
                refused = smtp.send_message(msg)
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
