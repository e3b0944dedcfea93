"""`syncd demo`, the README's first command, really works: server, cycle, board, email."""

from __future__ import annotations

import subprocess
import sys


def test_demo_shows_the_board_and_the_monitors_email() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "syncd", "demo"], capture_output=True, text=True, timeout=180
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Visit entries the monitor must get fixed" in out
    for rule in (
        "missing-times",
        "missing-postcode",
        "missing-return",
        "missing-who",
        "invalid-contact",
    ):
        assert rule in out
    assert "NOT BEING TRACKED (calendar unreadable): Eve Morris" in out
    assert (
        "Subject: [syncd] Children in Need (North): 1 calendar(s) not being tracked, 3 visit entries incomplete"
        in out
    )
    assert "morning report" in out
    # The complete entries of Amira Khan raise nothing.
    board = out.split("The SMTP sink caught")[0]
    assert "Amira Khan" not in board
    assert "Traceback" not in r.stderr
