"""One contract for every delivery channel, run over each channel's harness.

Adding a channel (SMS, Teams, ...) takes one module in ``syncd/notify/`` registered in
``syncd.notify.CHANNELS``, and one harness here, added to ``HARNESSES``. A harness is a
context manager yielding an object with:

- ``TRANSIENT`` / ``PERMANENT``: names of the ways its receiver can refuse a message, which
  must surface as ``NotifyError(permanent=False)`` / ``NotifyError(permanent=True)``;
- ``notifier()``: a new notifier delivering to the receiver (a new one stands for a restarted
  daemon, so the idempotency test can re-send across it);
- ``fail_next(how)``: the receiver refuses the next message in the named way, then recovers;
- ``received()``: what reached the receiver since the last call, as :class:`Delivered`, with
  ``id`` the receiving system's duplicate-detection id (an email's Message-ID).

Receivers are real where a real one runs on loopback: the email channel talks to aiosmtpd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import pytest
from aiosmtpd.controller import Controller

from syncd import notify
from syncd.errors import ConfigError, NotifyError
from syncd.notify.base import Message, Notifier, NotifierOptions
from syncd.notify.email import EmailNotifier, SmtpOptions
from syncd.notify.memory import MemoryNotifier
from tests.smtp_sink import Sink, free_port


@dataclass(frozen=True)
class Delivered:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    id: str


class Harness(Protocol):
    TRANSIENT: ClassVar[tuple[str, ...]]
    PERMANENT: ClassVar[tuple[str, ...]]

    def notifier(self) -> Notifier: ...

    def fail_next(self, how: str) -> None: ...

    def received(self) -> list[Delivered]: ...


# --- memory ---------------------------------------------------------------------------
class MemoryHarness:
    TRANSIENT = ("transient",)
    PERMANENT = ("permanent",)

    def __init__(self) -> None:
        # The memory channel is its own receiver, so every "new" notifier is this one.
        self._notifier = MemoryNotifier()
        self._seen = 0

    def notifier(self) -> Notifier:
        return self._notifier

    def fail_next(self, how: str) -> None:
        self._notifier.fail_next.append(NotifyError(how, permanent=how == "permanent"))

    def received(self) -> list[Delivered]:
        n = self._notifier
        out = [
            Delivered(m.to, m.subject, m.text, m.html, i)
            for m, i in zip(n.sent[self._seen :], n.ids[self._seen :], strict=True)
        ]
        self._seen = len(n.sent)
        return out


@contextmanager
def memory_harness() -> Iterator[MemoryHarness]:
    yield MemoryHarness()


# --- email over a real SMTP server ------------------------------------------------------
class RefusingSink(Sink):
    """The test SMTP sink, refusing the next message once at RCPT or DATA when told."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: tuple[str, str] | None = None  # (stage, reply)

    def _take_refusal(self, stage: str) -> str | None:
        if self.refuse is not None and self.refuse[0] == stage:
            reply = self.refuse[1]
            self.refuse = None
            return reply
        return None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self._take_refusal("RCPT")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self._take_refusal("DATA")
        if reply is not None:
            return reply
        return await super().handle_DATA(server, session, envelope)


class EmailHarness:
    REFUSALS: ClassVar[dict[str, tuple[str, str]]] = {
        "451 at DATA": ("DATA", "451 4.3.0 try again later"),
        "421 at DATA": ("DATA", "421 4.3.2 service shutting down"),
        "452 at RCPT": ("RCPT", "452 4.2.2 mailbox full"),
        "554 at DATA": ("DATA", "554 5.7.1 message refused"),
        "550 at RCPT": ("RCPT", "550 5.1.1 no such user"),
    }
    TRANSIENT = ("451 at DATA", "421 at DATA", "452 at RCPT")
    PERMANENT = ("554 at DATA", "550 at RCPT")

    def __init__(self, sink: RefusingSink) -> None:
        self.sink = sink
        self.options = SmtpOptions(
            host="127.0.0.1",
            port=sink.port,
            security="none",
            sender="syncd@council.example",
            timeout=10,
        )

    def notifier(self) -> Notifier:
        return notify.load("email")(self.options, lambda field: "")

    def fail_next(self, how: str) -> None:
        self.sink.refuse = self.REFUSALS[how]

    def received(self) -> list[Delivered]:
        return [
            Delivered(
                to=tuple(a.strip() for a in str(m["X-Envelope-To"]).split(",")),
                subject=str(m["Subject"]),
                # Email lines end in CRLF and MIME ends a text part with one; nothing else
                # may change.
                text=_lf(Sink.text(m)).removesuffix("\n"),
                html=_lf(Sink.html(m)).removesuffix("\n"),
                id=str(m["Message-ID"]),
            )
            for m in self.sink.take()
        ]


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


@contextmanager
def email_harness() -> Iterator[EmailHarness]:
    sink = RefusingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    try:
        yield EmailHarness(sink)
    finally:
        controller.stop()


HARNESSES: dict[str, Callable[[], AbstractContextManager[Any]]] = {
    "memory": memory_harness,
    "email": email_harness,
}
HARNESS_CLASSES: dict[str, Any] = {"memory": MemoryHarness, "email": EmailHarness}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with HARNESSES[request.param]() as h:
        yield h


def _failures(attr: str) -> list[Any]:
    return [
        pytest.param(kind, how, id=f"{kind}-{how}")
        for kind, cls in sorted(HARNESS_CLASSES.items())
        for how in getattr(cls, attr)
    ]


def _message(key: str | None = None, to: tuple[str, ...] = ("duty@council.example",)) -> Message:
    return Message(
        to=to,
        subject="[syncd] Children in Need (North): 2 visit entries incomplete – £ é",
        text="Amira Khan, Tue 1 Dec 09:30: HV Patel family\n"
        ".a line starting with a dot\n"
        "From the start of a line\n" + "long " * 40 + "\nend – ü ☎",
        html="<p>Amira Khan &amp; <b>HV Patel</b> – ☎</p>\n<p>" + "long " * 40 + "</p>",
        key=key,
    )


# --- the contract ---------------------------------------------------------------------
def test_delivers_subject_text_and_html_intact(harness: Harness) -> None:
    msg = _message(to=("duty@council.example", "deputy@council.example"))
    harness.notifier().send(msg)
    [got] = harness.received()
    assert (got.to, got.subject, got.text, got.html) == (msg.to, msg.subject, msg.text, msg.html)


@pytest.mark.parametrize(("kind", "how"), _failures("TRANSIENT"))
def test_transient_failure_is_retryable_and_a_retry_delivers_once(kind: str, how: str) -> None:
    with HARNESSES[kind]() as h:
        n = h.notifier()
        msg = _message(key="outbox-1")
        h.fail_next(how)
        with pytest.raises(NotifyError) as info:
            n.send(msg)
        assert info.value.permanent is False
        assert msg.to[0] not in str(info.value)  # errors reach logs: no addresses
        assert h.received() == []
        n.send(msg)
        assert [d.subject for d in h.received()] == [msg.subject]


@pytest.mark.parametrize(("kind", "how"), _failures("PERMANENT"))
def test_permanent_failure_says_so_and_delivers_nothing(kind: str, how: str) -> None:
    with HARNESSES[kind]() as h:
        msg = _message(key="outbox-2")
        h.fail_next(how)
        with pytest.raises(NotifyError) as info:
            h.notifier().send(msg)
        assert info.value.permanent is True
        assert msg.to[0] not in str(info.value)
        assert h.received() == []


def test_idempotency_key_gives_the_same_id_on_a_resend(harness: Harness) -> None:
    harness.notifier().send(_message(key="outbox-7"))
    # A crash between sending and recording it: the restarted daemon sends again.
    harness.notifier().send(_message(key="outbox-7"))
    harness.notifier().send(_message(key="outbox-8"))
    harness.notifier().send(_message())
    harness.notifier().send(_message())
    first, resent, other, plain1, plain2 = (d.id for d in harness.received())
    assert first == resent
    assert len({first, other, plain1, plain2}) == 4


# --- the registry ---------------------------------------------------------------------
def test_every_channel_has_a_harness() -> None:
    assert set(notify.CHANNELS) == set(HARNESSES) == set(HARNESS_CLASSES)


@pytest.mark.parametrize("kind", sorted(notify.CHANNELS))
def test_channel_registers_with_kind_and_options(kind: str) -> None:
    cls = notify.load(kind)
    assert issubclass(cls, Notifier)
    assert cls.kind == kind
    assert issubclass(cls.Options, NotifierOptions)
    assert cls.Options.model_config.get("extra") == "forbid"


def test_unknown_channel_names_the_real_ones_only() -> None:
    with pytest.raises(ConfigError) as info:
        notify.load("pigeon")
    assert "'pigeon'" in str(info.value) and "email" in str(info.value)
    assert "memory" not in str(info.value)


# --- email specifics ------------------------------------------------------------------
def test_email_message_id_is_stable_and_safe_for_any_key() -> None:
    opts = SmtpOptions(host="h", sender="syncd@council.example", security="none")
    n = EmailNotifier(opts, lambda field: "")
    a = n.build(_message(key="digest team:1,2 <x@y>"))["Message-ID"]
    b = EmailNotifier(opts, lambda field: "").build(_message(key="digest team:1,2 <x@y>"))
    assert a == b["Message-ID"]
    assert a.startswith("<digest-team-1-2-x-y.") and a.endswith("@council.example>")
    other = SmtpOptions(host="h", sender="syncd@other.example", security="none")
    assert (
        EmailNotifier(other, lambda f: "").build(_message(key="k"))["Message-ID"]
        != (n.build(_message(key="k"))["Message-ID"])
    )


def test_email_unreachable_server_is_transient() -> None:
    opts = SmtpOptions(host="127.0.0.1", port=free_port(), sender="s@council.example", timeout=5)
    with pytest.raises(NotifyError) as info:
        EmailNotifier(opts, lambda field: "").send(_message())
    assert info.value.permanent is False


def test_email_needs_its_password_only_with_a_username() -> None:
    base = {"host": "h", "sender": "s@council.example"}
    assert EmailNotifier(SmtpOptions(**base), lambda f: "").needed_secrets() == ()
    with_user = SmtpOptions(**base, username="syncd")
    assert EmailNotifier(with_user, lambda f: "").needed_secrets() == ("password",)
