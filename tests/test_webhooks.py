"""Microsoft Graph change notifications end to end: the FastAPI endpoint served by uvicorn on
127.0.0.1 behind a TLS-terminating proxy (as behind the council's reverse proxy), the fake
Graph (HTTPS, trustme CA) validating it and POSTing notifications to it, subscriptions kept
in the store, and the daemon running a partial cycle on a notification.

Simulated time throughout; the only waits are bounded polls for a real HTTP round trip."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from syncd.app.daemon import Daemon
from syncd.config import Config, parse_config
from syncd.errors import ConfigError
from syncd.notify.memory import MemoryNotifier
from syncd.store import GraphSubscriptionRow, open_store
from syncd.track.engine import Engine
from syncd.track.subscriptions import Subscriptions, Wanted, plan
from syncd.web.webhook import WebServer, Work, WorkQueue, create_app
from tests.fakes.tls_proxy import TlsProxy
from tests.harness import EventSpec
from tests.harness.graph import GraphHarness

LON = ZoneInfo("Europe/London")
T0 = datetime(2026, 12, 1, 6, 0, tzinfo=LON).astimezone(UTC)
STATE = "x" * 40 + "-client-state"
MAILBOX = "amira.khan@council.example"
PERSONAL = ("amira", "Amira", "Khan", "Patel", "Acacia", "DE1 3AB", STATE)


def visit(postcode: str = "") -> EventSpec:
    start = datetime(2026, 12, 2, 10, tzinfo=LON)
    return EventSpec(
        uid="v1",
        summary="HV Patel family",
        start=start,
        end=start + timedelta(hours=1),
        location=f"12 Acacia Avenue, Derby {postcode}".strip(),
        description="Mob 07911 123456. Going straight home after",
        tzid="GMT Standard Time",
    )


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition that a real HTTP round trip makes true; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        threading.Event().wait(0.02)
    return cond()


def assert_no_personal_data(caplog: pytest.LogCaptureFixture) -> None:
    # httpx logs request URLs at INFO; syncd.app.logs.setup raises it to WARNING in production.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("syncd", "uvicorn"))]
    assert ours
    for personal in PERSONAL:
        assert not [m for m in ours if personal in m], personal


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    h: GraphHarness
    now: list[datetime]
    port: int
    proxy: TlsProxy
    tmp: Path

    def config(self, *, staff: bool = True, **webhook: Any) -> Config:
        options = self.h.options().model_dump(mode="json", exclude_none=True)
        people = [
            {"id": "s1", "name": "Amira Khan", "calendar": {"source": "m", "locator": MAILBOX}}
        ]
        return parse_config(
            {
                "database": f"sqlite:///{self.tmp / 'state.db'}",
                "notify": {"settle_minutes": 0, "morning_report": None},
                "sources": [{"name": "m", "kind": "graph", **options}],
                "webhook": {
                    "listen": f"127.0.0.1:{self.port}",
                    "public_url": self.proxy.url,
                    "client_state": {"env": "SYNCD_WEBHOOK_STATE"},
                    **webhook,
                },
                "teams": [
                    {
                        "name": "North",
                        "monitors": ["duty@council.example"],
                        "staff": people if staff else [],
                    }
                ],
            }
        )

    def subscription_posts(self) -> int:
        return sum(
            1 for s in self.h.server.seen if s.method == "POST" and s.path == "/subscriptions"
        )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("SYNCD_GRAPH_SECRET", "harness-secret-value")
    monkeypatch.setenv("SYNCD_WEBHOOK_STATE", STATE)
    h = GraphHarness(tmp_path)
    now = [T0]
    h.server.clock = lambda: now[0]
    h.make_calendar("amira.khan")
    port = free_port()
    proxy = TlsProxy(h.server.ca, ("127.0.0.1", port))
    yield World(h, now, port, proxy, tmp_path)
    proxy.close()
    h.close()


# --- the endpoint on its own -----------------------------------------------------------------


def app_client(directory: dict[str, str]) -> tuple[TestClient, WorkQueue]:
    work: WorkQueue = __import__("queue").SimpleQueue()
    app = create_app(client_state=STATE, directory=lambda: directory, work=work)
    return TestClient(app), work


def notification(sub: str, state: str = STATE, **extra: Any) -> dict[str, Any]:
    item = {"subscriptionId": sub, "clientState": state, "changeType": "updated", **extra}
    return {"value": [item]}


@pytest.mark.parametrize("path", ["/graph/notifications", "/graph/lifecycle"])
def test_validation_handshake_echoes_the_token_as_plain_text(path: str) -> None:
    client, work = app_client({})
    token = "Validation: Testing client application reachability <b>x</b> & more"
    resp = client.post(path, params={"validationToken": token})
    assert resp.status_code == 200 and resp.text == token
    assert resp.headers["content-type"].startswith("text/plain")
    assert work.empty()


def test_wrong_client_state_is_dropped_a_good_one_queued_and_junk_is_400(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    client, work = app_client({"sub-1": "s1"})
    resp = client.post("/graph/notifications", json=notification("sub-1", state="forged"))
    assert resp.status_code == 202 and work.empty()
    assert "wrong clientState" in caplog.text
    resp = client.post("/graph/notifications", json=notification("sub-unknown"))
    assert resp.status_code == 202 and work.empty()

    assert client.post("/graph/notifications", json=notification("sub-1")).status_code == 202
    assert work.get_nowait() == Work(sync=frozenset({"s1"}))
    lifecycle = notification("sub-1", lifecycleEvent="reauthorizationRequired")
    assert client.post("/graph/lifecycle", json=lifecycle).status_code == 202
    assert work.get_nowait() == Work(renew=frozenset({"sub-1"}))

    assert client.post("/graph/notifications", content=b"not json").status_code == 400
    assert client.post("/graph/notifications", json={"no": "value"}).status_code == 400
    assert client.post("/graph/notifications", content=b"x" * (2 << 20)).status_code == 413
    assert client.get("/graph/notifications").status_code == 405
    assert client.get("/docs").status_code == 404  # nothing else is exposed
    assert work.empty()
    assert STATE not in caplog.text


# --- subscriptions: created once, renewed, recreated, kept across a restart -------------------


def test_plan_is_pure_and_orders_drops_first() -> None:
    w = Wanted("s1", "m", MAILBOX)
    row = GraphSubscriptionRow("s1", "sub", "m", w.locator_hash, T0 + timedelta(days=2), T0)
    margin = timedelta(hours=23)
    assert [a.kind for a in plan({"s1": w}, {}, T0, margin=margin)] == ["create"]
    assert plan({"s1": w}, {"s1": row}, T0, margin=margin) == []
    assert [
        a.kind for a in plan({"s1": w}, {"s1": row}, T0 + timedelta(days=1, hours=2), margin=margin)
    ] == ["renew"]
    assert [a.kind for a in plan({"s1": w}, {"s1": row}, T0, margin=margin, renew={"sub"})] == [
        "renew"
    ]
    assert [a.kind for a in plan({"s1": w}, {"s1": row}, T0, margin=margin, recreate={"s1"})] == [
        "recreate"
    ]
    assert [
        a.kind for a in plan({"s1": w}, {"s1": row}, T0 + timedelta(days=3), margin=margin)
    ] == ["recreate"]
    assert [a.kind for a in plan({}, {"s1": row}, T0, margin=margin)] == ["drop"]
    moved = Wanted("s1", "m", "someone.else@council.example")
    assert [a.kind for a in plan({"s1": moved}, {"s1": row}, T0, margin=margin)] == [
        "drop",
        "create",
    ]


def serve_endpoint(world: World, subs: Subscriptions, work: WorkQueue) -> WebServer:
    app = create_app(client_state=STATE, directory=subs.directory, work=work)
    web = WebServer(app, "127.0.0.1", world.port, clock=lambda: world.now[0])
    assert web.start()
    return web


def test_subscriptions_created_once_renewed_recreated_and_kept_across_a_restart(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = world.config()
    assert cfg.webhook is not None
    engine = Engine(cfg, open_store(cfg.database), MemoryNotifier())
    subs = Subscriptions(cfg, engine.store, engine.source, cfg.webhook, STATE)
    work: WorkQueue = __import__("queue").SimpleQueue()
    web = serve_endpoint(world, subs, work)
    fake = world.h.server
    try:
        # Created once: Graph validated both URLs through the proxy, over HTTPS.
        assert subs.maintain(T0).created == 1
        assert subs.maintain(T0 + timedelta(minutes=1)).created == 0
        assert world.subscription_posts() == 1 and len(fake.subscriptions) == 1
        (sub_id,) = fake.subscriptions
        sub = fake.subscriptions[sub_id]
        assert sub["notificationUrl"] == f"{world.proxy.url}/graph/notifications"
        assert sub["lifecycleNotificationUrl"] == f"{world.proxy.url}/graph/lifecycle"
        assert sub["clientState"] == STATE and subs.directory() == {sub_id: "s1"}

        # A restart: a new store handle and manager find it; nothing is created twice.
        engine2 = Engine(cfg, open_store(cfg.database), MemoryNotifier())
        subs2 = Subscriptions(cfg, engine2.store, engine2.source, cfg.webhook, STATE)
        subs2.load()
        assert subs2.directory() == {sub_id: "s1"}
        assert subs2.maintain(T0 + timedelta(minutes=2)).created == 0
        assert world.subscription_posts() == 1
        engine2.close()

        # Renewed before expiry (4230 minutes asked; renewed with a third left).
        (row,) = engine.store.graph_subscriptions()
        assert row.expires_at == T0 + timedelta(minutes=4230)
        assert subs.maintain(T0 + timedelta(hours=46)).renewed == 0
        world.now[0] = T0 + timedelta(hours=48)
        assert subs.maintain(world.now[0]).renewed == 1
        (row,) = engine.store.graph_subscriptions()
        assert row.subscription_id == sub_id
        assert row.expires_at == world.now[0] + timedelta(minutes=4230)
        assert row.expires_at > T0 + timedelta(minutes=4230)

        # Graph removes it and says so on the lifecycle URL: recreated.
        del fake.subscriptions[sub_id]
        lifecycle = notification(sub_id, lifecycleEvent="subscriptionRemoved")
        assert fake.post_notification(f"{world.proxy.url}/graph/lifecycle", lifecycle) == 202
        asked = work.get(timeout=5)
        assert asked is not None and asked.recreate == {"s1"} and asked.sync == {"s1"}
        assert subs.maintain(world.now[0], recreate=asked.recreate).created == 1
        (new_id,) = fake.subscriptions
        assert new_id != sub_id and subs.directory() == {new_id: "s1"}

        # Removed without a word: the renewal's 404 makes a new one.
        del fake.subscriptions[new_id]
        world.now[0] += timedelta(hours=48)
        report = subs.maintain(world.now[0])
        assert report.created == 1 and report.failed == 0 and len(fake.subscriptions) == 1

        # A failure (the mailbox left the access policy) is a warning, never an exception,
        # and is retried later, not every poll.
        fake.deny(MAILBOX)
        (current,) = fake.subscriptions
        del fake.subscriptions[current]
        world.now[0] += timedelta(hours=48)
        assert subs.maintain(world.now[0]).failed == 1
        assert "polling continues" in caplog.text
        posts = world.subscription_posts()
        assert subs.maintain(world.now[0] + timedelta(minutes=1)).failed == 0
        assert world.subscription_posts() == posts  # backing off
        fake.deny(MAILBOX, False)
        assert subs.maintain(world.now[0] + timedelta(minutes=5)).created == 1

        # The calendar leaves the config: its subscription is deleted at Graph too.
        gone = world.config(staff=False)
        assert gone.webhook is not None
        subs3 = Subscriptions(gone, engine.store, engine.source, gone.webhook, STATE)
        assert subs3.maintain(world.now[0] + timedelta(minutes=6)).dropped == 1
        assert fake.subscriptions == {} and engine.store.graph_subscriptions() == []
    finally:
        web.stop()
        engine.close()
    assert_no_personal_data(caplog)


# --- through the daemon ------------------------------------------------------------------------


def test_a_notification_syncs_the_corrected_entry_without_waiting_for_the_poll(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world.h.put(MAILBOX, visit())
    cfg = world.config()
    engine = Engine(cfg, open_store(cfg.database), MemoryNotifier())
    notes: list[str] = []
    daemon = Daemon(engine, interval=3600, clock=lambda: world.now[0], notify=notes.append)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: "READY=1" in notes)
        assert [f.rule for f in engine.store.open_findings("s1").values()] == ["missing-postcode"]
        assert len(world.h.server.subscriptions) == 1 and daemon.cycles == 1

        world.now[0] += timedelta(minutes=2)
        world.h.put(MAILBOX, visit("DE1 3AB"))  # the fake POSTs the change notification
        assert world.h.server.deliveries[-1][1] == 202
        # The finding closes inside engine.cycle, before the daemon counts the partial cycle:
        # wait on the counter (the later of the two), then look at the store.
        assert wait_for(lambda: daemon.partial_cycles + daemon.failed_cycles >= 1)
        assert daemon.partial_cycles == 1 and daemon.failed_cycles == 0
        assert engine.store.open_findings("s1") == {}
        assert daemon.cycles == 1  # no poll ran
    finally:
        daemon.stop()
        runner.join(15)
    assert not runner.is_alive() and "STOPPING=1" in notes
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", world.port), timeout=1):
        pass  # the endpoint is down
    assert_no_personal_data(caplog)


def test_polling_goes_on_when_the_endpoint_cannot_listen(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.h.put(MAILBOX, visit())
    cfg = world.config()
    engine = Engine(cfg, open_store(cfg.database), MemoryNotifier())
    daemon = Daemon(engine, interval=3600, clock=lambda: world.now[0], notify=lambda _m: None)
    with socket.create_server(("127.0.0.1", world.port)):
        assert daemon.start_webhook() is False
    assert "cannot listen" in caplog.text
    daemon.run_cycle()
    assert daemon.cycles == 1 and engine.store.open_findings("s1")
    assert world.h.server.subscriptions == {}
    engine.close()


def test_a_missing_client_state_turns_notifications_off_not_the_daemon(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCD_WEBHOOK_STATE")
    cfg = world.config()
    engine = Engine(cfg, open_store(cfg.database), MemoryNotifier())
    daemon = Daemon(engine, interval=3600, clock=lambda: world.now[0], notify=lambda _m: None)
    assert daemon.start_webhook() is False
    assert "webhook.client_state" in caplog.text and "polling only" in caplog.text
    engine.close()


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        ({"public_url": "http://syncd.example"}, "webhook.public_url: must be an https:// URL"),
        ({"listen": "8089"}, "webhook.listen: use host:port"),
        ({"client_state": "s3cret"}, "webhook.client_state: must name where the secret lives"),
        ({"lifetime_minutes": 10080}, "webhook.lifetime_minutes"),
        ({"public_url": "https://x.example", "extra": 1}, "webhook.extra: unknown key"),
    ],
)
def test_webhook_config_errors_name_the_key(webhook: dict[str, Any], message: str) -> None:
    table = {"public_url": "https://syncd.example", "client_state": {"env": "X"}, **webhook}
    with pytest.raises(ConfigError) as info:
        parse_config({"webhook": table})
    assert message in str(info.value)
    assert "s3cret" not in str(info.value)


def test_webhook_config_defaults() -> None:
    cfg = parse_config(
        {"webhook": {"public_url": "https://gw.example/syncd/", "client_state": {"env": "X"}}}
    )
    hook = cfg.webhook
    assert hook is not None and (hook.host, hook.port) == ("127.0.0.1", 8089)
    assert hook.notification_url == "https://gw.example/syncd/graph/notifications"
    assert hook.lifetime == timedelta(minutes=4230)
    assert json.loads(parse_config({}).model_dump_json())["webhook"] is None


def test_the_documented_webhook_snippet_is_valid() -> None:
    import re
    import tomllib

    doc = (Path(__file__).parent.parent / "docs" / "microsoft-365.md").read_text()
    snippet = next(b for b in re.findall(r"```toml\n(.*?)```", doc, re.S) if "[webhook]" in b)
    cfg = parse_config(tomllib.loads(snippet))
    assert cfg.webhook is not None and cfg.webhook.client_state.credential == "graph-client-state"
    assert cfg.webhook.notification_url == "https://syncd.council.example/graph/notifications"
