"""The shipped unit keeps the properties the brief and `systemd-analyze security` ask for."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "syncd" / "app" / "data" / "syncd.service"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_is_notify_with_watchdog_credentials_and_hardening() -> None:
    d = directives()
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["StateDirectory"] == ["syncd"]
    assert d["User"] == ["syncd"] and d["DynamicUser"] == ["yes"]
    assert any(v.startswith("caldav-password:") for v in d["LoadCredential"])
    for key in (
        "NoNewPrivileges",
        "PrivateTmp",
        "ProtectHome",
        "PrivateDevices",
        "RestrictSUIDSGID",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "LockPersonality",
    ):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"]
    assert d["CapabilityBoundingSet"] == [""]
    for key in (
        "RestrictNamespaces",
        "MemoryDenyWriteExecute",
        "ProtectKernelLogs",
        "ProtectClock",
        "ProtectHostname",
        "RestrictRealtime",
        "PrivateUsers",
    ):
        assert d[key] == ["yes"], key
    assert "@system-service" in d["SystemCallFilter"]
    assert d["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]


def test_unit_gives_the_webhook_and_the_sync_loop_their_descriptors() -> None:
    from syncd.web.guard import Limits

    (nofile,) = directives()["LimitNOFILE"]
    # The webhook holds at most a quarter: the default limits fit without being lowered.
    assert Limits().fitted(int(nofile)) == Limits()
    assert Limits().descriptors() * 4 <= int(nofile)
    # Under a smaller limit (systemd's 1,024, or a tight ulimit) the webhook shrinks to fit.
    for small in (1024, 256, 200, 64, 24):
        assert Limits().fitted(small).descriptors() <= small // 4


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_security_rates_the_unit_ok() -> None:
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    if m is None:
        pytest.skip("this systemd-analyze cannot rate unit files offline")
    assert float(m.group(1)) <= 2.0


def _generated(tmp_path: Path, toml: str) -> str:
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(toml)
    r = subprocess.run(
        [sys.executable, "-m", "syncd", "systemd-unit", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_generated_unit_loads_exactly_the_credentials_the_config_names(tmp_path: Path) -> None:
    unit = _generated(
        tmp_path,
        '[smtp]\nhost = "relay.council.example"\nsecurity = "none"\nsender = "s@council.example"\n'
        '[[sources]]\nname = "dav"\nkind = "caldav"\nurl = "https://dav.council.example/"\n'
        'username = "syncd"\npassword = { credential = "dav-pw" }\n',
    )
    creds = [line for line in unit.splitlines() if line.startswith("LoadCredential=")]
    # A relay without a password needs no smtp-password: the shipped unit's line would stop
    # systemd from starting the service at all.
    assert creds == ["LoadCredential=dav-pw:/etc/syncd/credentials/dav-pw"]
    assert f"--config {tmp_path / 'syncd.toml'}" in unit
    assert "Type=notify" in unit and "ProtectSystem=strict" in unit


def test_generated_unit_opens_the_metrics_folder(tmp_path: Path) -> None:
    unit = _generated(tmp_path, f'metrics_file = "{tmp_path}/prom/syncd.prom"\n')
    assert f"ReadWritePaths={tmp_path}/prom" in unit.splitlines()
    assert not [line for line in unit.splitlines() if line.startswith("LoadCredential=")]


def test_init_writes_the_shipped_files_and_never_overwrites(tmp_path: Path) -> None:
    def init() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "syncd", "init", str(tmp_path / "etc")],
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert init().returncode == 0
    assert (tmp_path / "etc" / "syncd.service").read_text() == UNIT.read_text()
    assert "[[sources]]" in (tmp_path / "etc" / "syncd.toml").read_text()
    again = init()
    assert again.returncode == 2 and "already exists" in again.stderr
