"""What an admin needs to install syncd: the example config, and a unit that fits the config.

The unit's ``LoadCredential=`` lines are generated from the secrets the config names, so an
internal relay without a password does not stop the service from starting (systemd refuses
to start a unit whose credential file is missing), and a new source's secret is not forgotten.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from syncd.config import Config
from syncd.errors import ConfigError
from syncd.secrets import SecretRef

CREDENTIALS_DIR = "/etc/syncd/credentials"
DATA = resources.files("syncd.app") / "data"


def secret_refs(cfg: Config) -> list[tuple[str, SecretRef]]:
    """Every secret the config names, with the key that names it."""
    refs: list[tuple[str, SecretRef]] = []
    for i in range(len(cfg.sources)):
        opts = cfg.source_options(i)
        for name in type(opts).model_fields:
            value = getattr(opts, name)
            if isinstance(value, SecretRef):
                refs.append((f"sources[{i}].{name}", value))
    if cfg.smtp is not None and cfg.smtp.password is not None:
        refs.append(("smtp.password", cfg.smtp.password))
    if cfg.webhook is not None:
        refs.append(("webhook.client_state", cfg.webhook.client_state))
    return refs


def example_config() -> str:
    return (DATA / "syncd.example.toml").read_text(encoding="utf-8")


def unit_text(cfg: Config, config_path: Path) -> str:
    """The shipped unit with one LoadCredential= per ``{ credential = ... }`` in ``cfg``."""
    names = sorted({ref.credential for _where, ref in secret_refs(cfg) if ref.credential})
    out: list[str] = []
    for line in (DATA / "syncd.service").read_text(encoding="utf-8").splitlines():
        bare = line.lstrip("# ")
        if bare.startswith("LoadCredential="):
            continue  # the template's examples; the real ones follow Environment=
        line = line.replace("/etc/syncd/syncd.toml", str(config_path))
        out.append(line)
        if line.startswith("Environment=SYNCD_CONFIG="):
            out += [f"LoadCredential={n}:{CREDENTIALS_DIR}/{n}" for n in names]
            if cfg.metrics_file is not None:
                # ProtectSystem=strict makes everything read-only but the state directory.
                out.append(f"ReadWritePaths={cfg.metrics_file.parent}")
    return "\n".join(out) + "\n"


def write_init(target: Path) -> list[Path]:
    """Write the example config and the unit into ``target``; never overwrite a file."""
    files = {
        target / "syncd.toml": example_config(),
        target / "syncd.service": (DATA / "syncd.service").read_text(encoding="utf-8"),
    }
    for path in files:
        if path.exists():
            raise ConfigError(f"{path}: already exists; not overwritten")
    target.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)
