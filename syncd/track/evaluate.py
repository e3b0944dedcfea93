"""Step 2 of the cycle: check each calendar that changed (or every one, once a day) and
write new and resolved findings with their notifications in one transaction."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from syncd.config import Config
from syncd.domain import rules
from syncd.domain.events import Fixed, NewFinding, Notice, Nudge, parse_when
from syncd.domain.model import Occurrence, Problem, Window
from syncd.domain.tracking import diff_findings, local_day, problem_finding
from syncd.parse.ical import parse_ical
from syncd.store import Store, utc_start
from syncd.track.context import CycleReport, Roster, contact, local_when


def settle_until(first_seen: datetime, start_utc: datetime, settle: timedelta) -> datetime | None:
    """When a finding first seen at ``first_seen`` is announced: after the settling time, or
    at once (None) if there is none or the visit starts sooner than that."""
    if not settle or start_utc - first_seen < settle:
        return None
    return first_seen + settle


class Evaluator:
    def __init__(self, config: Config, store: Store, staff: Roster):
        self.config = config
        self.store = store
        self.staff = staff
        self.tz = config.tz

    def evaluate_all(self, now: datetime, window: Window, report: CycleReport) -> None:
        today = local_day(now, self.tz).isoformat()
        states = {s.key: s for s in self.store.calendars()}
        for key in self.staff:
            state = states.get(key)
            if state is None or (not state.dirty and state.evaluated_day == today):
                continue
            self.evaluate(key, now, window, report)

    def evaluate(self, key: str, now: datetime, window: Window, report: CycleReport) -> None:
        team, staff = self.staff[key]
        occurrences, problems = self.occurrences(key, window)
        result = rules.check(
            occurrences, calendar=key, tz=self.tz, window=window, config=self.config.rules
        )
        findings = list(result.findings) + [problem_finding(key, p, window) for p in problems]
        open_ = self.store.open_findings(key)
        diff = diff_findings(
            {k: f.start_utc for k, f in open_.items()},
            findings,
            {v.key for v in result.visits},
            {k: f.occurrence for k, f in open_.items()},
            window,
        )
        notices: list[Notice] = []
        settle = timedelta(minutes=self.config.notify.settle_minutes)
        for f in diff.new:
            start = local_when(f.start, self.tz)
            due = settle_until(now, utc_start(f.start), settle)
            finding = NewFinding(
                staff.id,
                staff.name,
                f.rule,
                f.summary,
                start,
                f.message,
                contact=contact(staff),
                started=utc_start(f.start) <= now and f.rule != "unreadable-entry",
            )
            notices.append(Notice(team.name, finding, due=due))
            if self.config.notify.nudge_staff and staff.email:
                nudge = Nudge(staff.id, staff.name, f.rule, f.summary, start, f.message)
                notices.append(Notice(team.name, nudge, recipient=staff.email, due=due))
        for fkey, resolution in diff.resolved:
            if resolution == "fixed":
                f0 = open_[fkey]
                held = settle_until(f0.first_seen, f0.start_utc, settle)
                if held is not None and now < held:
                    # Fixed while still settling: never announced, so neither is the fix.
                    self.withdraw(staff.id, f0.rule, f0.start_utc, held, now)
                    continue
                start = local_when(parse_when(f0.start), self.tz)
                fixed = Fixed(staff.id, staff.name, f0.rule, f0.summary, start)
                notices.append(Notice(team.name, fixed))
        # An unreadable entry has no date of its own and is dated at today's window start;
        # moving it along each day keeps it in the morning report until it is fixed.
        redated = [
            (f.key, f.start.isoformat(), utc_start(f.start))
            for f in findings
            if f.key in open_ and open_[f.key].start != f.start.isoformat()
        ]
        self.store.save_evaluation(
            key,
            day=local_day(now, self.tz).isoformat(),
            now=now,
            visits=result.visits,
            new=[(f, utc_start(f.start)) for f in diff.new],
            resolved=diff.resolved,
            redated=redated,
            notices=notices,
        )
        report.evaluated += 1
        report.visits += len(result.visits)
        report.new_findings += len(diff.new)
        report.resolved_findings += len(diff.resolved)

    def withdraw(
        self, staff_id: str, rule: str, start_utc: datetime, held: datetime, now: datetime
    ) -> None:
        """Drop the still-held notices (digest and nudge) of a finding fixed while settling."""
        ids = [
            r.id
            for r in self.store.due(held)
            if isinstance(r.event, NewFinding | Nudge)
            and r.event.staff_id == staff_id
            and r.event.rule == rule
            and utc_start(r.event.start) == start_utc
        ]
        got = self.store.claim(ids, now, held)
        if got:
            self.store.defer(got, "withdrawn: fixed within the settling time", None, now)

    def occurrences(self, key: str, window: Window) -> tuple[list[Occurrence], list[Problem]]:
        occs: list[Occurrence] = []
        problems: list[Problem] = []
        for item in self.store.items(key):
            if item.kind == "ical":
                try:
                    parsed = parse_ical(item.data, window=window, tz=self.tz)
                except Exception as exc:  # one unreadable entry must not blind us to the rest
                    problems.append(
                        Problem(
                            uid=item.href,
                            summary="",
                            message=f"entry could not be read ({type(exc).__name__})",
                        )
                    )
                    continue
                occs.extend(parsed.occurrences)
                problems.extend(parsed.problems)
            elif item.kind == "problem":  # the source listed the entry but could not read it
                try:
                    d = json.loads(item.data)
                    problems.append(Problem(str(d["uid"]), str(d["summary"]), str(d["message"])))
                except (ValueError, KeyError, TypeError):
                    problems.append(Problem(item.href, "", "entry could not be read"))
            else:
                occ = Occurrence.from_json(item.data)
                occs.append(occ)
        return occs, problems
