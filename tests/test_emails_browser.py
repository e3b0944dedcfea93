"""The HTML emails in a real browser at phone width (issue 8 item 8): headless Debian
Chromium driven by Playwright, at 360 px, must not scroll sideways. Skips cleanly where
/usr/bin/chromium or Playwright is absent."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.domain.events import (
    Blind,
    MorningReport,
    NewFinding,
    ReportBlind,
    ReportLine,
    ReportNotRead,
)
from syncd.domain.rules import MESSAGES, RULE_IDS
from syncd.notify.base import Message
from syncd.notify.render import render_digest, render_morning

CHROMIUM = Path("/usr/bin/chromium")
LON = ZoneInfo("Europe/London")
LONG_SUMMARY = "HV " + "Patel-Abernathy-Fotheringham-family-" * 4 + "review"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


def _messages() -> list[Message]:
    start = datetime(2026, 12, 1, 10, 0, tzinfo=LON)
    findings = [
        NewFinding("s1", "Amira Khan", r, LONG_SUMMARY, start, MESSAGES[r], contact="07700 900123")
        for r in RULE_IDS
    ]
    lines = tuple(
        ReportLine("s2", "Ben Taylor", r, LONG_SUMMARY, start, MESSAGES[r], "ben@council.example")
        for r in RULE_IDS
    )
    blind = Blind("s3", "Carys Jones", start, "Exchange request failed (TransportError)" * 3)
    report = MorningReport(
        day=date(2026, 12, 1),
        findings=lines,
        blind=(ReportBlind("Carys Jones", start),),
        visits=7,
        calendars=3,
        not_read=(ReportNotRead("Dev Patel", "not read yet"),),
    )
    to = ["duty@council.example"]
    return [
        render_digest("North", [*findings, blind], to=to),
        render_morning("North", report, to=to),
    ]


def test_emails_do_not_scroll_sideways_at_360_px() -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 360, "height": 740})
            for msg in _messages():
                assert msg.html is not None
                page.set_content(msg.html)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 360, (msg.subject, width)
                assert page.evaluate("document.querySelectorAll('table').length") == 0
        finally:
            browser.close()
