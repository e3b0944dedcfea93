"""Turn outbox rows into messages a monitor can act on at once: plain text and HTML."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Protocol

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from syncd.notify.base import Message


class OutboxRow(Protocol):
    """What rendering needs of a queued notification (the store's row satisfies it)."""

    @property
    def kind(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...


_env = Environment(
    loader=PackageLoader("syncd.notify", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

RULE_TITLES = {
    "missing-who": "who is visited",
    "missing-postcode": "postcode",
    "invalid-postcode": "postcode (not valid)",
    "missing-times": "start and finish times",
    "missing-return": "return time or 'going home'",
    "missing-contact": "contact number",
    "invalid-contact": "contact number (not valid)",
    "missing-purpose": "purpose of visit",
    "unreadable-entry": "entry could not be read",
}


def when(iso: str) -> str:
    """'Tue 1 Dec 09:30' for a timed visit, 'Tue 1 Dec (all day)' for a date."""
    if "T" in iso:
        dt = datetime.fromisoformat(iso)
        return f"{dt:%a} {dt.day} {dt:%b %H:%M}"
    d = date.fromisoformat(iso)
    return f"{d:%a} {d.day} {d:%b} (all day)"


_env.filters["when"] = when
_env.filters["rule_title"] = lambda r: RULE_TITLES.get(r, r)


def _group_findings(payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per visit (worker, entry, start) listing every missing detail."""
    by_visit: dict[tuple[str, str, str], dict[str, Any]] = {}
    for p in payloads:
        k = (p["staff_id"], p["start"], p["summary"])
        row = by_visit.setdefault(
            k,
            {
                "staff_name": p["staff_name"],
                "summary": p["summary"],
                "start": p["start"],
                "rules": [],
                "messages": [],
            },
        )
        row["rules"].append(p["rule"])
        row["messages"].append(p["message"])
    return sorted(by_visit.values(), key=lambda r: (r["start"], r["staff_name"]))


def render_digest(team: str, rows: Sequence[OutboxRow], *, to: Sequence[str]) -> Message:
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        kinds[r.kind].append(r.payload)
    ctx = {
        "team": team,
        "findings": _group_findings(kinds["finding"]),
        "fixed": _group_findings([{**p, "message": ""} for p in kinds["fixed"]]),
        "blind": kinds["blind"],
        "recovered": kinds["recovered"] + [{**p, "refilled": True} for p in kinds["refilled"]],
        "emptied": kinds["emptied"],
        "accepted": kinds["empty-accepted"],
    }
    parts = []
    if ctx["blind"] or ctx["emptied"]:
        parts.append(f"{len(ctx['blind']) + len(ctx['emptied'])} calendar(s) not being tracked")
    if ctx["findings"]:
        parts.append(
            f"{len(ctx['findings'])} visit entr{'y' if len(ctx['findings']) == 1 else 'ies'} incomplete"
        )
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


def render_morning(team: str, payload: dict[str, Any], *, to: Sequence[str]) -> Message:
    ctx = {
        "team": team,
        "day": payload["day"],
        "findings": _group_findings(payload["findings"]),
        "blind": payload["blind"],
        "visits": payload["visits"],
    }
    n = len(ctx["findings"])
    subject = f"[syncd] {team}: morning report, " + (
        f"{n} incomplete visit entr{'y' if n == 1 else 'ies'} today and tomorrow"
        if n
        else "all visit entries complete"
    )
    if ctx["blind"]:
        subject += f", {len(ctx['blind'])} calendar(s) not readable"
    return Message(
        to=tuple(to),
        subject=subject,
        text=_env.get_template("morning.txt").render(**ctx),
        html=_env.get_template("morning.html").render(**ctx),
    )


def render_nudge(staff_name: str, rows: Sequence[OutboxRow], *, to: Sequence[str]) -> Message:
    findings = _group_findings([r.payload for r in rows])
    n = len(findings)
    ctx = {"staff_name": staff_name, "findings": findings}
    return Message(
        to=tuple(to),
        subject=f"Please complete {n} visit entr{'y' if n == 1 else 'ies'} in your calendar",
        text=_env.get_template("nudge.txt").render(**ctx),
        html=_env.get_template("nudge.html").render(**ctx),
    )
