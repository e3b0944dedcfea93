"""Step 2 of the cycle: check each calendar that changed (or every one, once a day) and
write new and resolved findings with their notifications in one transaction."""

from __future__ import annotations

import json
from datetime import datetime

from syncd.config import Config
from syncd.domain import rules
from syncd.domain.events import Fixed, NewFinding, Notice, Nudge, parse_when
from syncd.domain.model import Occurrence, Problem, Window
from syncd.domain.tracking import diff_findings, local_day, problem_finding
from syncd.parse.ical import parse_ical
from syncd.store import Store, utc_start
from syncd.track.context import CycleReport, Roster


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
        for f in diff.new:
            fields = (staff.id, staff.name, f.rule, f.summary, f.start, f.message)
            notices.append(Notice(team.name, NewFinding(*fields)))
            if self.config.notify.nudge_staff and staff.email:
                notices.append(Notice(team.name, Nudge(*fields), recipient=staff.email))
        for fkey, resolution in diff.resolved:
            if resolution == "fixed":
                f0 = open_[fkey]
                fixed = Fixed(staff.id, staff.name, f0.rule, f0.summary, parse_when(f0.start))
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
