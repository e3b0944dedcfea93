"""Shared pytest fixtures. Keep each owner's fixtures in its own marked section."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The harness modules import ``tests.*``; make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# CI runs Hypothesis derandomized, so a landing never depends on the luck of a seed; local
# runs keep exploring new examples (and the example database keeps what they found).
from hypothesis import settings as _hsettings

from tests import servers

_hsettings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    _hsettings.load_profile("ci")

# === CalDAV servers (owner: CalDAV source) ==================================================


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.SharedServer]:
    """One Radicale for the whole session; tests create their own users and calendars."""
    srv = servers.radicale(tmp_path_factory.mktemp("radicale"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def xandikos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.SharedServer]:
    srv = servers.xandikos(tmp_path_factory.mktemp("xandikos"))
    yield srv
    srv.stop()


# === end CalDAV servers ======================================================================
