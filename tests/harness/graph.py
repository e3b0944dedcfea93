"""Harness over the fake Microsoft Graph (tests/fakes/graph_server.py).

Entries are written the way Outlook stores them: Windows time-zone names, a ``recurrence``
pattern for an RRULE, exceptions for overrides and deleted occurrences for EXDATEs. The
event id is the spec's uid, so ``Occurrence.uid`` (series master id, or event id) equals it.
"""

from __future__ import annotations

import html
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from syncd.secrets import SecretRef
from syncd.sources.base import Source
from syncd.sources.graph.source import GraphOptions, GraphSource
from tests.fakes.graph_server import FakeGraph

from . import EventSpec

_OLSON_TO_WINDOWS: dict[str, str] = {}
for _win, _iana in WINDOWS_TO_OLSON.items():
    _OLSON_TO_WINDOWS.setdefault(_iana, _win)
_BYDAY = {
    "MO": "monday",
    "TU": "tuesday",
    "WE": "wednesday",
    "TH": "thursday",
    "FR": "friday",
    "SA": "saturday",
    "SU": "sunday",
}


def windows_name(tzid: str) -> str:
    """The name Outlook would write for ``tzid`` (already-Windows names pass through)."""
    if tzid in WINDOWS_TO_OLSON or tzid.upper() == "UTC":
        return tzid
    return _OLSON_TO_WINDOWS.get(tzid, tzid)


def _zone(tzid: str) -> ZoneInfo:
    return ZoneInfo(WINDOWS_TO_OLSON.get(tzid, "UTC" if tzid.upper() == "UTC" else tzid))


def _dtz(value: datetime | date, tzid: str) -> dict[str, str]:
    if isinstance(value, datetime):
        wall = value.astimezone(_zone(tzid)).replace(tzinfo=None)
        return {
            "dateTime": wall.isoformat(timespec="microseconds") + "0",
            "timeZone": windows_name(tzid),
        }
    return {"dateTime": f"{value.isoformat()}T00:00:00.0000000", "timeZone": windows_name(tzid)}


def spec_to_graph(spec: EventSpec, organizer: str = "") -> dict[str, Any]:
    """An EventSpec as the Graph ``event`` JSON Outlook would store (no recurrence).

    ``organizer`` stands in for ``spec.organizer`` (an exception keeps its series').
    """
    all_day = not isinstance(spec.start, datetime)
    end = spec.end
    if end is None:
        end = spec.start if not all_day else spec.start + timedelta(days=1)
    lines = spec.description.splitlines()
    body = "<html><body>" + "<br>".join(html.escape(line) for line in lines) + "</body></html>"
    location: dict[str, Any] = {"displayName": spec.location, "locationType": "default"}
    location["address"] = {"postalCode": spec.postal_code} if spec.postal_code else {}
    doc: dict[str, Any] = {
        "subject": spec.summary,
        "body": {"contentType": "html", "content": body},
        "start": _dtz(spec.start, spec.tzid),
        "end": _dtz(end, spec.tzid),
        "isAllDay": all_day,
        "isCancelled": spec.cancelled,
        "categories": list(spec.categories),
        "location": location,
        "showAs": "busy",
        "sensitivity": "normal",
    }
    address = organizer or spec.organizer
    if address:
        # Without one the fake, like Graph, names the mailbox owner.
        doc["organizer"] = {"emailAddress": {"name": address.split("@")[0], "address": address}}
    return doc


def rrule_to_recurrence(spec: EventSpec) -> dict[str, Any]:
    parts = dict(p.split("=", 1) for p in spec.rrule.upper().split(";") if p)
    tz = _zone(spec.tzid)
    first = spec.start.astimezone(tz) if isinstance(spec.start, datetime) else spec.start
    first_day = first.date() if isinstance(first, datetime) else first
    interval = int(parts.get("INTERVAL", "1"))
    freq = parts["FREQ"]
    if freq == "DAILY":
        pattern: dict[str, Any] = {"type": "daily", "interval": interval}
    elif freq == "WEEKLY":
        days = (
            [_BYDAY[d[-2:]] for d in parts["BYDAY"].split(",")]
            if "BYDAY" in parts
            else [list(_BYDAY.values())[first_day.weekday()]]
        )
        pattern = {
            "type": "weekly",
            "interval": interval,
            "daysOfWeek": days,
            "firstDayOfWeek": "monday",
        }
    elif freq == "MONTHLY" and "BYDAY" not in parts:
        pattern = {
            "type": "absoluteMonthly",
            "interval": interval,
            "dayOfMonth": int(parts.get("BYMONTHDAY", first_day.day)),
        }
    else:
        raise NotImplementedError(f"Graph harness cannot write RRULE {spec.rrule}")
    rng: dict[str, Any] = {
        "startDate": first_day.isoformat(),
        "recurrenceTimeZone": windows_name(spec.tzid),
    }
    if "COUNT" in parts:
        rng.update(type="numbered", numberOfOccurrences=int(parts["COUNT"]), endDate="0001-01-01")
    elif "UNTIL" in parts:
        until = parts["UNTIL"]
        rng.update(type="endDate", endDate=f"{until[:4]}-{until[4:6]}-{until[6:8]}")
    else:
        rng.update(type="noEnd", endDate="0001-01-01")
    return {"pattern": pattern, "range": rng}


class GraphHarness:
    kind = "graph"

    def __init__(self, tmp_path: Path):
        self.secret = "harness-secret-value"
        self.server = FakeGraph(client_secret=self.secret).start(tmp_path)

    def make_calendar(self, name: str) -> str:
        address = f"{name}@council.example"
        self.server.add_mailbox(address)
        return address

    def put(self, locator: str, event: EventSpec) -> None:
        doc = spec_to_graph(event)
        if event.rrule:
            doc["recurrence"] = rrule_to_recurrence(event)
        self.server.put_event(locator, doc, event_id=event.uid)
        for original in event.exdates:
            self.server.cancel_occurrence(locator, event.uid, original)
        for original, override in event.overrides.items():
            self.server.put_exception(
                locator, event.uid, original, spec_to_graph(override, event.organizer)
            )

    def delete(self, locator: str, uid: str) -> None:
        self.server.delete_event(locator, uid)

    def options(self, **overrides: Any) -> GraphOptions:
        values: dict[str, Any] = {
            "tenant_id": self.server.tenant_id,
            "client_id": self.server.client_id,
            "client_secret": SecretRef(env="SYNCD_GRAPH_SECRET"),
            "authority_host": self.server.base_url,
            "graph_url": self.server.graph_url,
            "ca_file": self.server.ca_file,
            "max_retry_wait": 60.0,
        }
        values.update(overrides)
        return GraphOptions(**values)

    def source(self) -> Source:
        return self.graph_source()

    def graph_source(self, **overrides: Any) -> GraphSource:
        # Throttling waits are recorded, never slept: tests run on simulated time.
        self.slept: list[float] = []
        return GraphSource(
            "m365", self.options(**overrides), lambda _field: self.secret, sleep=self.slept.append
        )

    def break_auth(self) -> None:
        self.server.rotate_secret("a-secret-the-harness-does-not-know")

    def expire_state(self) -> None:
        self.server.expire_delta_tokens()

    def close(self) -> None:
        self.server.stop()
