"""Config validation: every error names the file and the key; secrets never come from TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import notify
from syncd.config import build_notifier, load_config, parse_config
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


# --- the notifier, built from [smtp] through the channel registry -----------------------
SMTP = '\n[smtp]\nhost = "relay.council.example"\nsender = "syncd@council.example"\n'


def test_no_smtp_means_no_notifier(tmp_path: Path) -> None:
    assert build_notifier(load_config(write(tmp_path, BASE))) is None


def test_smtp_table_is_the_email_channels_options(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE + SMTP))
    n = build_notifier(cfg)
    assert type(n) is notify.load("email") and n.kind == "email"
    assert isinstance(cfg.smtp, notify.load("email").Options)


def test_smtp_password_is_read_at_start_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = BASE + SMTP + 'username = "syncd"\npassword = { env = "SYNCD_TEST_SMTP_PW" }\n'
    cfg = load_config(write(tmp_path, text))
    monkeypatch.delenv("SYNCD_TEST_SMTP_PW", raising=False)
    with pytest.raises(ConfigError, match=r"^smtp\.password: "):
        build_notifier(cfg)
    monkeypatch.setenv("SYNCD_TEST_SMTP_PW", "pw")
    assert build_notifier(cfg) is not None


def test_smtp_username_without_password_is_refused_at_start(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE + SMTP + 'username = "syncd"\n'))
    with pytest.raises(ConfigError, match=r"^smtp\.password: not configured"):
        build_notifier(cfg)
