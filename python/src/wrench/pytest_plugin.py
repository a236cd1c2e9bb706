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

With --wrench-coverage, the session ends with the failure points its tests
reached ("wrench coverage"), read with wrench.points(): those of each
scratch directory, read as its test ends (the directory may be gone by the
end of the session), and those of the trigger directory in force reached
since the session began. --wrench-coverage-json=PATH writes them to PATH.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

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


Point = Dict[str, Any]


def _merge_programs(into: List[Dict[str, Any]], more: List[Dict[str, Any]]) -> None:
    """Adds MORE's programs to INTO, one entry per program name."""
    by_name = {program["program"]: program for program in into}
    for program in more:
        known = by_name.get(program["program"])
        if known is None:
            by_name[program["program"]] = dict(program)
            into.append(by_name[program["program"]])
            continue
        # ISO 8601 times in UTC, to the second: their order is the strings'.
        known["first_reached"] = min(known["first_reached"], program["first_reached"])
        if program["last_reached"] >= known["last_reached"]:
            known["last_reached"] = program["last_reached"]
            known["last_pid"] = program["last_pid"]


class Coverage:
    """The failure points a session reached, one per category and feature.

    The same point reached in several directories (a scratch directory per
    test) is one entry: its lines and fires summed (fires None when any is
    unknown), its programs merged.
    """

    def __init__(self, trigger_dir: Optional[str]) -> None:
        self.trigger_dir = trigger_dir
        # A point reached before the session's second is not the session's.
        self.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.points: Dict[Tuple[str, str], Point] = {}
        self.problems: List[str] = []

    def collect(self, directory: str, since: Optional[str] = None) -> None:
        """Adds the points reached in DIRECTORY (since SINCE, if given)."""
        try:
            found = wrench.points(dir=directory)
        except (wrench.CommandError, OSError) as error:
            self.problems.append(f"{directory}: {error}")
            return
        for point in found:
            last = point["last_reached"]
            if point["reached"] and last is not None and (since is None or last >= since):
                self.add(point)

    def add(self, point: Point) -> None:
        key = (point["category"], point["feature"])
        known = self.points.get(key)
        if known is None:
            known = dict(point, programs=[])
            self.points[key] = known
        else:
            known["first_reached"] = min(known["first_reached"], point["first_reached"])
            known["last_reached"] = max(known["last_reached"], point["last_reached"])
            known["lines"] += point["lines"]
            both = (known["fires"], point["fires"])
            known["fires"] = None if None in both else both[0] + both[1]
        _merge_programs(known["programs"], point["programs"])

    def sorted_points(self) -> List[Point]:
        return [self.points[key] for key in sorted(self.points)]

    def lines(self) -> List[str]:
        """The terminal section: a table of the points, then a count."""
        table = [["CATEGORY", "FEATURE", "LINES", "FIRES", "PROGRAMS"]]
        for point in self.sorted_points():
            fires = "?" if point["fires"] is None else str(point["fires"])
            programs = ", ".join(program["program"] for program in point["programs"])
            table.append(
                [point["category"], point["feature"], str(point["lines"]), fires, programs]
            )
        widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
        out = []
        if len(table) > 1:
            out = [
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                for row in table
            ]
        out += [f"not read: {problem}" for problem in self.problems]
        fired = sum(1 for point in self.points.values() if point["fires"])
        out.append(f"{len(self.points)} point(s) reached, {fired} fired")
        return out


# The switch as it was before the session, restored after it.
_previous = pytest.StashKey[bool]()
# The points reached, with --wrench-coverage or --wrench-coverage-json.
_coverage = pytest.StashKey[Coverage]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wrench", "failure points (libwrench)")
    group.addoption(
        "--wrench-coverage",
        action="store_true",
        help="at the end of the session, list the failure points the tests reached "
        "(runs the wrench command: $WRENCH_COMMAND, else wrench in PATH)",
    )
    group.addoption(
        "--wrench-coverage-json",
        metavar="PATH",
        help="write the failure points the tests reached to PATH, as JSON",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Before collection: a module that calls a failure point at import
    # is already covered.
    config.stash[_previous] = wrench.set_enabled(False)
    if config.getoption("wrench_coverage") or config.getoption("wrench_coverage_json"):
        try:
            wrench._points.command()
        except FileNotFoundError as error:
            raise pytest.UsageError(f"--wrench-coverage: {error}") from None
        config.stash[_coverage] = Coverage(wrench.get_dir())


def pytest_sessionfinish(session: pytest.Session) -> None:
    coverage = session.config.stash.get(_coverage, None)
    if coverage is None:
        return
    if coverage.trigger_dir is not None:
        coverage.collect(coverage.trigger_dir, since=coverage.since)
    path = session.config.getoption("wrench_coverage_json")
    if path:
        target = session.config.invocation_params.dir / path
        target.write_text(json.dumps(coverage.sorted_points(), indent=2) + "\n", encoding="utf-8")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    coverage = config.stash.get(_coverage, None)
    if coverage is None or not config.getoption("wrench_coverage"):
        return
    terminalreporter.write_sep("=", "wrench coverage")
    for line in coverage.lines():
        terminalreporter.write_line(line)


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
def wrench_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, wrench_enabled: None
) -> Iterator[TriggerDir]:
    """wrench on, with a fresh trigger directory of mode 0700 for this test."""
    path = tmp_path_factory.mktemp("wrench")
    path.chmod(0o700)
    wrench.set_dir(path)
    try:
        yield TriggerDir(path)
    finally:
        coverage = request.config.stash.get(_coverage, None)
        try:
            if coverage is not None:
                coverage.collect(str(path))
        finally:
            wrench.set_dir(None)
