"""The README's configuration reference is the schema's: generated from the pydantic models,
so a key cannot be documented wrongly or left out."""

from __future__ import annotations

from pathlib import Path

from syncd.app import configdoc
from syncd.config import Config, parse_config

README = Path(__file__).parent.parent / "README.md"
REGENERATE = "python -m syncd.app.configdoc --write README.md"

# Keys of source options models without a Field description. Empty: every key has one,
# and a new key must come with its description.
NOT_YET_DESCRIBED: set[str] = set()


def _section(text: str) -> str:
    start, end = text.find(configdoc.BEGIN), text.find(configdoc.END)
    assert start >= 0 and end > start, (
        f"README.md lost its config reference markers; put them back and run `{REGENERATE}`"
    )
    return text[start : end + len(configdoc.END) + 1]


def test_readme_reference_is_generated_from_the_schema() -> None:
    documented = _section(README.read_text(encoding="utf-8"))
    generated = configdoc.render()
    assert documented == generated, (
        "README.md's configuration reference differs from the schema. Edit the pydantic "
        f"Field descriptions (not the README table), then run: {REGENERATE}"
    )


def test_every_table_and_key_appears() -> None:
    text = configdoc.render()
    tables = {s.model for s in configdoc.sections()}
    assert Config in tables
    for model in tables:
        for name in model.model_fields:
            assert f"`{name}`" in text or f"{name}]" in text, f"{model.__name__}.{name}"
    for kind in ("caldav", "ics", "ews", "graph"):
        assert f'`[[sources]]` with `kind = "{kind}"`' in text
    assert 'kind = "memory"' not in text  # the test fake is not offered


def test_every_key_of_the_config_models_is_described() -> None:
    missing = set(configdoc.missing_descriptions())
    ours = {m for m in missing if m.partition(".")[0] not in _options_models()}
    assert not ours, f"describe these in their Field(description=...): {sorted(ours)}"


def test_undescribed_source_options_only_shrink() -> None:
    missing = {
        m for m in configdoc.missing_descriptions() if m.partition(".")[0] in _options_models()
    }
    new = missing - NOT_YET_DESCRIBED
    assert not new, f"new source options without a Field description: {sorted(new)}"


def _options_models() -> set[str]:
    return {
        s.model.__name__ for s in configdoc.sections() if s.title.startswith("`[[sources]]` with")
    }


def test_defaults_in_the_reference_are_the_models_defaults() -> None:
    # The reference says what an empty config gets; check a few against a parsed one.
    cfg = parse_config({})
    text = configdoc.render()
    assert f"| `poll_interval` | `{cfg.poll_interval}` |" in text
    assert f"| `timezone` | `{cfg.timezone}` |" in text
    assert f"| `morning_report` | `{cfg.notify.morning_report:%H:%M}` |" in text
    assert "| `days` | `mon, tue, wed, thu, fri` |" in text


def test_splice_replaces_only_the_marked_section() -> None:
    before = "intro\n" + configdoc.BEGIN + "\nold table\n" + configdoc.END + "\noutro\n"
    out = configdoc.splice(before, configdoc.render())
    assert out.startswith("intro\n" + configdoc.BEGIN) and out.endswith(configdoc.END + "\noutro\n")
    assert "old table" not in out


def test_secret_keys_are_marked_as_such() -> None:
    text = configdoc.render()
    for line in text.splitlines():
        if line.startswith(("| `password` ", "| `client_state` ", "| `client_secret` ")):
            assert "A secret reference." in line, line
