"""Harness over the ICS source: one folder of ``<uid>.ics`` files per calendar."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from syncd.sources.base import Source
from syncd.sources.ics import IcsOptions, IcsSource

from . import EventSpec
from .ical_build import spec_to_ical


class IcsHarness:
    kind = "ics"

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "ics"
        self.root.mkdir(parents=True, exist_ok=True)
        self._broken: list[Path] = []

    def make_calendar(self, name: str) -> str:
        folder = self.root / quote(name, safe="")
        folder.mkdir()
        return str(folder)

    def put(self, locator: str, event: EventSpec) -> None:
        path = _path(locator, event.uid)
        # Write then rename, as an exporter should: a reader never sees half a file.
        tmp = path.with_suffix(".tmp")
        tmp.write_text(spec_to_ical(event), encoding="utf-8")
        tmp.replace(path)

    def delete(self, locator: str, uid: str) -> None:
        _path(locator, uid).unlink()

    def source(self) -> Source:
        return IcsSource("ics", IcsOptions(), lambda _field: "")

    def break_auth(self) -> None:
        if os.geteuid() == 0:
            pytest.skip("file permissions do not bind root; ICS has no credentials to break")
        for folder in self.root.iterdir():
            folder.chmod(0)
            self._broken.append(folder)

    def expire_state(self) -> None:
        """Nothing to expire: every ICS sync lists the whole calendar."""

    def close(self) -> None:
        for folder in self._broken:
            folder.chmod(0o755)


def _path(locator: str, uid: str) -> Path:
    return Path(locator) / f"{quote(uid, safe='@')}.ics"
