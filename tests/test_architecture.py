"""The pipeline's import direction (pyproject's [tool.importlinter] contracts), enforced."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_import_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_a_wrong_way_import_breaks_the_build(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "syncd", tmp_path / "syncd", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    model = tmp_path / "syncd" / "domain" / "model.py"
    model.write_text(
        model.read_text() + "\nimport sqlalchemy  # noqa\nfrom syncd import store  # noqa\n"
    )
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "syncd.domain.model -> syncd.store" in result.stdout
    assert "sqlalchemy" in result.stdout
