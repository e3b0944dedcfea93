"""Occurrence JSON: what sources store and the engine reads back."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from syncd.domain.model import Occurrence, organizer_address

LONDON = ZoneInfo("Europe/London")


def test_organizer_round_trips_through_json() -> None:
    occ = Occurrence(
        uid="a",
        start=datetime(2025, 10, 14, 9, tzinfo=LONDON),
        end=None,
        organizer="duty.desk@council.example",
    )
    assert json.loads(occ.to_json())["organizer"] == "duty.desk@council.example"
    assert Occurrence.from_json(occ.to_json()) == occ


def test_json_stored_before_the_organizer_was_kept_still_reads() -> None:
    old = (
        '{"categories": [], "cancelled": false, "description": "", "end": null, '
        '"location": "", "postal_code": "", "recurrence_id": "", '
        '"start": "2025-10-14T09:00:00+01:00", "summary": "Visit", "uid": "a"}'
    )
    occ = Occurrence.from_json(old)
    assert occ.organizer == "" and occ.summary == "Visit"


def test_organizer_address_drops_mailto_in_any_case_and_lowers() -> None:
    assert organizer_address(" MAILTO:Jo.Smith@Council.Example ") == "jo.smith@council.example"
    assert organizer_address("mailto: a@b.example") == "a@b.example"
    assert organizer_address("Jo@X.example") == "jo@x.example"
    assert organizer_address("") == ""
