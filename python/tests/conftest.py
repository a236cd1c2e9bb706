"""Shared helpers. The suite tests the installed package against the library
named by WRENCH_LIBRARY (python/run_tests.sh sets it to the one just built)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest

import wrench

pytest_plugins = ["pytester"]

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def library_is_loaded() -> None:
    # Without the library most tests would pass vacuously (nothing fires).
    if not wrench.available():
        pytest.exit(
            f"libwrench.so.1 was not loaded; set {wrench.LIBRARY_ENV} "
            "to the built library's absolute path",
            returncode=2,
        )


def run_python(
    code: str, timeout: float = 60, cwd: Optional[Path] = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Runs CODE in a fresh interpreter, in CWD, with ENV added to this one's environment."""
    environment = dict(os.environ)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A trigger directory the library trusts, not made the library's."""
    path = tmp_path / "wrench"
    path.mkdir(mode=0o700)
    return path


def write_trigger(directory: Path, category: str, text: str) -> Path:
    path = directory / category
    path.write_text(text)
    path.chmod(0o600)
    return path
