"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives, or refuses it."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.reply: str | None = None
        """When set (e.g. "451 4.3.0 try later"), every message is refused with it."""
        self._lock = threading.Lock()
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply is not None:
            return self.reply
        msg = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._lock:
            self.messages.append(msg)
        return "250 OK"

    def take(self) -> list[EmailMessage]:
        with self._lock:
            out, self.messages = self.messages, []
        return out

    @staticmethod
    def text(msg: EmailMessage) -> str:
        body = msg.get_body(preferencelist=("plain",))
        assert body is not None
        content: str = body.get_content()
        return content

    @staticmethod
    def html(msg: EmailMessage) -> str:
        body = msg.get_body(preferencelist=("html",))
        assert body is not None
        content: str = body.get_content()
        return content


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# aiosmtpd narrates every SMTP command at INFO.
logging.getLogger("mail.log").setLevel(logging.WARNING)


@contextmanager
def smtp_sink() -> Iterator[Sink]:
    sink = Sink()
    # Controller(port=0) cannot report the port it got, so pick a free one first.
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    try:
        yield sink
    finally:
        controller.stop()
