"""pytest plugin: wrench is off for a test session unless a test asks for it.

Loaded through the pytest11 entry point when the package is installed
(disable it with -p no:wrench). Stray trigger files on a developer's
machine then never change a suite's results, as in Juju's Go suites,
which switch wrench off in their setup. A test asks for failure points
with a fixture:

    def test_push_retries(wrench_dir):
        wrench_dir.write("my-charm", "push-fails first=2 every=3\\n")
        ...

wrench_enabled switches wrench on for one test, with the trigger directory
as it is; wrench_dir does that with a fresh scratch directory, and writes
trigger files the library trusts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

import wrench


class TriggerDir:
    """A scratch trigger directory, made the library's for one test."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def write(self, category: str, text: str) -> Path:
        """Writes the trigger file CATEGORY with TEXT, mode 0600, atomically.

        The library sees the new file from its next call (strict mode) and
        restarts the counters of its lines, as `wrench set` does.
        """
        target = self.path / category
        fd, temporary = tempfile.mkstemp(dir=self.path, prefix=".wrench-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
        return target

    def remove(self, category: str) -> None:
        """Removes the trigger file CATEGORY, if it exists."""
        try:
            (self.path / category).unlink()
        except FileNotFoundError:
            pass


# The switch as it was before the session, restored after it.
_previous = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    # Before collection: a module that calls a failure point at import
    # is already covered.
    config.stash[_previous] = wrench.set_enabled(False)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _previous in config.stash:
        wrench.set_enabled(config.stash[_previous])


@pytest.fixture
def wrench_enabled() -> Iterator[None]:
    """Switches wrench on for this test, and off again after it.

    Skips the test when libwrench.so.1 is not loaded: nothing could fire.
    """
    if not wrench.available():
        pytest.skip(
            "libwrench.so.1 is not loaded: install libwrench1 "
            "or set WRENCH_LIBRARY to its absolute path"
        )
    previous = wrench.set_enabled(True)
    try:
        yield
    finally:
        wrench.set_enabled(previous)


@pytest.fixture
def wrench_dir(tmp_path_factory: pytest.TempPathFactory, wrench_enabled: None) -> Iterator[TriggerDir]:
    """wrench on, with a fresh trigger directory of mode 0700 for this test."""
    path = tmp_path_factory.mktemp("wrench")
    path.chmod(0o700)
    wrench.set_dir(path)
    try:
        yield TriggerDir(path)
    finally:
        wrench.set_dir(None)
