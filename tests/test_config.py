"""Config validation: every error names the file and the key; secrets never come from TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load_config, parse_config
from syncd.errors import ConfigError
from syncd.secrets import SecretRef

BASE = """
[[sources]]
name = "cal"
kind = "memory"

[[teams]]
name = "North"
monitors = ["duty@council.example"]
  [[teams.staff]]
  id = "s1"
  name = "A Worker"
  calendar = { source = "cal", locator = "a" }
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "syncd.toml"
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    return str(exc.value)


def test_minimal_config_gets_the_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.timezone == "Europe/London"
    assert cfg.poll_interval == 60 and cfg.lookahead_days == 28
    assert cfg.teams[0].staff[0].calendar.locator == "a"


def test_example_config_is_valid() -> None:
    cfg = load_config(
        Path(__file__).parent.parent / "syncd" / "app" / "data" / "syncd.example.toml"
    )
    assert cfg.smtp is not None and cfg.smtp.password == SecretRef(credential="smtp-password")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE + "poll_interval = 1\n", "poll_interval"),
        ('timezone = "Mars/Olympus"\n' + BASE, "timezone: unknown time zone"),
        (BASE + "colour = 'red'\n", "colour: unknown key"),
        (
            BASE.replace('"duty@council.example"', '"not-an-address"'),
            "teams[0].monitors[0]: not an email address",
        ),
        (BASE.replace('source = "cal"', 'source = "nope"'), "teams[0].staff[0].calendar.source"),
        (BASE.replace('id = "s1"', 'id = "Jo Smith"'), "teams[0].staff[0].id"),
        (BASE.replace('kind = "memory"', 'kind = "carrier-pigeon"'), "unknown source kind"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    msg = error_of(tmp_path, text)
    assert str(tmp_path / "syncd.toml") in msg
    assert expected in msg
    assert "\n" not in msg


def test_a_secret_written_into_the_toml_is_refused_without_echoing_it(tmp_path: Path) -> None:
    text = (
        BASE + '\n[smtp]\nhost = "h"\nsender = "s@council.example"\npassword = "hunter2-secret"\n'
    )
    msg = error_of(tmp_path, text)
    assert "smtp.password" in msg and "never the secret itself" in msg
    assert "hunter2" not in msg


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert "not valid TOML" in error_of(tmp_path, "teams = [")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")


def test_duplicate_staff_ids_are_refused() -> None:
    data = {
        "sources": [{"name": "cal", "kind": "memory"}],
        "teams": [
            {
                "name": t,
                "monitors": ["m@council.example"],
                "staff": [{"id": "s1", "name": "x", "calendar": {"source": "cal", "locator": t}}],
            }
            for t in ("A", "B")
        ],
    }
    with pytest.raises(ConfigError, match="duplicate staff id"):
        parse_config(data)


def test_secrets_from_env_file_and_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "caldav").write_text("from-credential")
    env = {"SYNCD_PW": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    assert SecretRef(env="SYNCD_PW").get(env) == "from-env"
    assert SecretRef(file=tmp_path / "pw").get(env) == "from-file"
    assert SecretRef(credential="caldav").get(env) == "from-credential"
    with pytest.raises(ConfigError, match="environment variable MISSING") as exc:
        SecretRef(env="MISSING").get(env)
    assert "from-" not in str(exc.value)
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        SecretRef(credential="caldav").get({})
