"""Turn events into messages a monitor can act on at once: plain text and HTML.

What goes where is decided by the event's type (:mod:`syncd.domain.events`), never by a
kind string.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from syncd.domain.events import (
    Blind,
    Emptied,
    EmptyAccepted,
    Event,
    Fixed,
    MorningReport,
    NewFinding,
    Nudge,
    Recovered,
    Refilled,
    ReportLine,
)
from syncd.domain.rules import RULE_IDS, RULES
from syncd.notify.base import Message

_env = Environment(
    loader=PackageLoader("syncd.notify", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

RULE_TITLES = {r.id: r.title for r in RULES.values()}
"""The short label each rule has in emails: one table, syncd.domain.rules.RULES."""


def when(moment: datetime | date | str) -> str:
    """'Tue 1 Dec 09:30' for a timed visit, 'Tue 1 Dec (all day)' for a date (or their ISO
    text)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment) if "T" in moment else date.fromisoformat(moment)
    if isinstance(moment, datetime):
        return f"{moment:%a} {moment.day} {moment:%b %H:%M}"
    return f"{moment:%a} {moment.day} {moment:%b} (all day)"


_env.filters["when"] = when
_env.filters["contact_href"] = lambda c: (
    f"mailto:{c}" if "@" in c else "tel:" + "".join(ch for ch in c if ch.isdigit() or ch == "+")
)
_env.filters["rule_title"] = lambda r: RULE_TITLES.get(r, r)
_env.tests["refilled"] = lambda e: isinstance(e, Refilled)


def _iso(moment: datetime | date) -> str:
    return moment.isoformat()


_ORDER = {r: i for i, r in enumerate(RULE_IDS)}


def _group_findings(
    found: Sequence[NewFinding | Nudge | Fixed | ReportLine],
) -> list[dict[str, Any]]:
    """One block per visit (worker, entry, start) listing every missing detail, in the rule
    table's order (syncd.domain.rules.RULE_IDS) wherever the visit is listed."""
    by_visit: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in found:
        # Keyed and ordered by the ISO text, as stored: dates and datetimes do not compare.
        k = (f.staff_id, _iso(f.start), f.summary)
        row = by_visit.setdefault(
            k,
            {
                "staff_name": f.staff_name,
                "summary": f.summary,
                "start": f.start,
                "contact": getattr(f, "contact", ""),
                "started": getattr(f, "started", False),
                "problems": [],
            },
        )
        row["problems"].append((f.rule, "" if isinstance(f, Fixed) else f.message))
    for row in by_visit.values():
        row["problems"].sort(key=lambda p: _ORDER.get(p[0], len(_ORDER)))
        row["rules"] = [r for r, _ in row["problems"]]
        row["messages"] = [m for _, m in row["problems"]]
    return sorted(by_visit.values(), key=lambda r: (_iso(r["start"]), r["staff_name"]))


def _split(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(visits still to come, visits already begun or over)."""
    return [r for r in rows if not r["started"]], [r for r in rows if r["started"]]


def render_digest(team: str, events: Sequence[Event], *, to: Sequence[str]) -> Message:
    """The team's digest of everything but morning reports and nudges."""
    findings: list[NewFinding] = []
    fixed: list[Fixed] = []
    blind: list[Blind] = []
    readable: list[Recovered] = []
    refilled: list[Refilled] = []
    emptied: list[Emptied] = []
    accepted: list[EmptyAccepted] = []
    for e in events:
        match e:
            case NewFinding():
                findings.append(e)
            case Fixed():
                fixed.append(e)
            case Blind():
                blind.append(e)
            case Recovered():
                readable.append(e)
            case Refilled():
                refilled.append(e)
            case Emptied():
                emptied.append(e)
            case EmptyAccepted():
                accepted.append(e)
            case MorningReport() | Nudge():
                raise ValueError(f"a {e.kind} event does not go into a digest")
    upcoming, begun = _split(_group_findings(findings))
    ctx: dict[str, Any] = {
        "team": team,
        "findings": upcoming,
        "begun": begun,
        "fixed": _group_findings(fixed),
        "blind": blind,
        "recovered": [*readable, *refilled],
        "emptied": emptied,
        "accepted": accepted,
    }
    parts = []
    if ctx["blind"] or ctx["emptied"]:
        parts.append(f"{len(ctx['blind']) + len(ctx['emptied'])} calendar(s) not being tracked")
    n = len(upcoming) + len(begun)
    if n:
        parts.append(f"{n} visit entr{'y' if n == 1 else 'ies'} incomplete")
    if ctx["fixed"]:
        parts.append(f"{len(ctx['fixed'])} fixed")
    if ctx["recovered"]:
        parts.append(f"{len(ctx['recovered'])} calendar(s) readable again")
    if ctx["accepted"]:
        parts.append(f"{len(ctx['accepted'])} calendar(s) now empty")
    subject = f"[syncd] {team}: " + ", ".join(parts or ["update"])
    return Message(
        to=tuple(to),
        subject=subject,
        text=_env.get_template("digest.txt").render(**ctx),
        html=_env.get_template("digest.html").render(**ctx),
    )


def render_morning(team: str, report: MorningReport, *, to: Sequence[str]) -> Message:
    """Blind spots first; completeness is claimed only for the calendars actually read."""
    upcoming, begun = _split(_group_findings(report.findings))
    unread = len(report.blind) + len(report.not_read)
    total = report.calendars or None  # reports written before it was kept: unknown
    ctx: dict[str, Any] = {
        "team": team,
        "day": report.day.isoformat(),
        "findings": upcoming,
        "begun": begun,
        "blind": report.blind,
        "not_read": report.not_read,
        "unread": unread,
        "total": total,
        "read": None if total is None else max(total - unread, 0),
        "visits": report.visits,
    }
    parts = []
    if unread:
        parts.append(f"{unread} calendar(s) not read")
    n = len(upcoming) + len(begun)
    if n:
        parts.append(f"{n} incomplete visit entr{'y' if n == 1 else 'ies'} today and tomorrow")
    elif not unread:
        parts.append("all visit entries complete")
    elif ctx["read"]:
        parts.append(f"no incomplete entries in the {ctx['read']} of {total} calendars read")
    subject = f"[syncd] {team}: morning report, " + ", ".join(parts)
    return Message(
        to=tuple(to),
        subject=subject,
        text=_env.get_template("morning.txt").render(**ctx),
        html=_env.get_template("morning.html").render(**ctx),
    )


def render_nudge(staff_name: str, nudges: Sequence[Nudge], *, to: Sequence[str]) -> Message:
    findings = _group_findings(nudges)
    n = len(findings)
    ctx = {"staff_name": staff_name, "findings": findings}
    return Message(
        to=tuple(to),
        subject=f"Please complete {n} visit entr{'y' if n == 1 else 'ies'} in your calendar",
        text=_env.get_template("nudge.txt").render(**ctx),
        html=_env.get_template("nudge.html").render(**ctx),
    )
