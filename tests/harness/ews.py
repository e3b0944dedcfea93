"""Harness over the fake EWS server (tests/fakes/ews_server.py) and the real EwsSource."""

from __future__ import annotations

from exchangelib.protocol import Protocol

from syncd.secrets import SecretRef
from syncd.sources.base import Source
from syncd.sources.ews import EwsOptions, EwsSource
from tests.fakes.ews_server import FakeEws

from . import EventSpec

DOMAIN = "example.org"


class EwsHarness:
    kind = "ews"

    def __init__(self, *, access_type: str = "impersonation") -> None:
        self.fake = FakeEws().start()
        self.access_type = access_type
        self._password = self.fake.password

    def make_calendar(self, name: str) -> str:
        return self.fake.add_mailbox(f"{name}@{DOMAIN}")

    def put(self, locator: str, event: EventSpec) -> None:
        self.fake.put(locator, event)

    def delete(self, locator: str, uid: str) -> None:
        self.fake.delete(locator, uid)

    def options(self, **overrides: object) -> EwsOptions:
        fields: dict[str, object] = {
            "service_endpoint": self.fake.url,
            "version": "Exchange2016",
            "auth_type": "basic",
            "access_type": self.access_type,
            "username": self.fake.username,
            "password": SecretRef(env="SYNCD_TEST_EWS_PASSWORD"),
        }
        fields.update(overrides)
        return EwsOptions.model_validate(fields)

    def source(self, **overrides: object) -> Source:
        password = self._password
        return EwsSource("exchange", self.options(**overrides), lambda _field: password)

    def break_auth(self) -> None:
        self.fake.password = "rotated-by-IT"

    def expire_state(self) -> None:
        self.fake.expire_sync_states()

    def close(self) -> None:
        # exchangelib caches one Protocol (and its sessions) per endpoint and credentials.
        Protocol.clear_cache()
        self.fake.stop()
