"""WRENCH_LIBRARY: an absolute path is loaded, a relative one is refused.

Each test loads a copy of the library under test from its own directory,
so that what a child process mapped tells which file it chose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_python, write_trigger

# Prints what a user would see, then every libwrench file the process mapped.
CHILD = """
import logging, sys
form = "%(name)s|%(levelname)s|%(message)s"
logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format=form)
import wrench
print("available", wrench.available())
print("active", wrench.is_active("my-charm", "push-fails"))
print("set_enabled", wrench.set_enabled(True))
print("dir", wrench.get_dir())
with open("/proc/self/maps") as maps:
    for path in sorted({line.split()[-1] for line in maps if "libwrench" in line}):
        print("mapped", path)
"""


def loaded_library() -> Path:
    """The libwrench.so.1 this test process loaded (built, or installed).

    The file mapped is the one the soname's link points to (libwrench.so.1.2.0).
    """
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = Path(line.split()[-1])
            if path.name.startswith("libwrench.so.1"):
                return path
    raise AssertionError("libwrench.so.1 is not mapped in the test process")


@pytest.fixture
def home(tmp_path: Path, scratch: Path) -> Path:
    """A directory holding lib/libwrench.so.1, a copy of the library under test."""
    (tmp_path / "lib").mkdir()
    shutil.copy2(loaded_library(), tmp_path / "lib" / "libwrench.so.1")
    # A trigger that fires whenever a library is loaded.
    write_trigger(scratch, "my-charm", "push-fails\n")
    return tmp_path


def lines_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def library_messages(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("wrench|") and "WRENCH_LIBRARY" in line]


@pytest.mark.parametrize(
    "value, searched",
    [
        ("lib/libwrench.so.1", False),
        ("./lib/libwrench.so.1", False),
        # A bare name: the dynamic linker would search LD_LIBRARY_PATH.
        ("libwrench.so.1", True),
    ],
)
def test_relative_wrench_library_is_refused_with_a_warning(
    home: Path, scratch: Path, value: str, searched: bool
) -> None:
    env = {"WRENCH_LIBRARY": value, "WRENCH_DIR": str(scratch)}
    if searched:
        env["LD_LIBRARY_PATH"] = str(home / "lib")
    lines = lines_of(run_python(CHILD, cwd=home, **env))
    # As if the library were missing, though the file is there to load.
    assert "available False" in lines
    assert "active False" in lines
    assert "set_enabled False" in lines
    assert "dir None" in lines
    assert [line for line in lines if line.startswith("mapped ")] == []
    # One message, and only this one: what was found, that it is ignored, the fix.
    messages = [line for line in lines if line.startswith("wrench|")]
    assert messages == [
        f"wrench|WARNING|WRENCH_LIBRARY is {value!r}, a relative path, so it is ignored "
        "and every failure point answers False; set WRENCH_LIBRARY to the library's "
        "absolute path, or unset it to load the installed libwrench.so.1"
    ]


def test_relative_wrench_library_warning_is_seen_without_logging_configured(home: Path) -> None:
    result = run_python(
        "import wrench; print(wrench.available())", cwd=home, WRENCH_LIBRARY="lib/libwrench.so.1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    # Python's last-resort handler: warnings reach stderr.
    assert result.stderr.startswith("WRENCH_LIBRARY is 'lib/libwrench.so.1', a relative path")
    assert len(result.stderr.splitlines()) == 1


def test_absolute_wrench_library_is_loaded(home: Path, scratch: Path) -> None:
    library = home / "lib" / "libwrench.so.1"
    lines = lines_of(
        run_python(CHILD, cwd=home, WRENCH_LIBRARY=str(library), WRENCH_DIR=str(scratch))
    )
    assert "available True" in lines
    assert "active True" in lines
    assert f"mapped {library}" in lines
    assert library_messages(lines) == []


def test_empty_wrench_library_loads_the_soname(home: Path, scratch: Path) -> None:
    # Empty is unset: the soname, found here through LD_LIBRARY_PATH.
    lines = lines_of(
        run_python(
            CHILD,
            cwd=home,
            WRENCH_LIBRARY="",
            LD_LIBRARY_PATH=str(home / "lib"),
            WRENCH_DIR=str(scratch),
        )
    )
    assert "available True" in lines
    assert f"mapped {home / 'lib' / 'libwrench.so.1'}" in lines
    assert library_messages(lines) == []


def test_python_e_ignores_a_relative_wrench_library(home: Path, scratch: Path) -> None:
    # -E ignores the variable altogether, so there is nothing to refuse.
    env = dict(os.environ)
    env.update(
        WRENCH_LIBRARY="lib/libwrench.so.1",
        LD_LIBRARY_PATH=str(home / "lib"),
        WRENCH_DIR=str(scratch),
    )
    result = subprocess.run(
        [sys.executable, "-E", "-c", CHILD],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = lines_of(result)
    assert "available True" in lines
    assert library_messages(lines) == []
