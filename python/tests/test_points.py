"""wrench.points(): the failure points reached, as the wrench command lists them."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import pytest

import wrench

# The library records the name of the process's executable, as ps shows it.
PROGRAM = os.path.basename(os.path.realpath(sys.executable))
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def without_times(point: dict) -> dict:
    """POINT with its times checked for form and order, then left out."""
    assert TIME.match(point["first_reached"]) and TIME.match(point["last_reached"])
    assert point["first_reached"] <= point["last_reached"]
    programs = []
    for program in point["programs"]:
        assert program["first_reached"] <= program["last_reached"]
        programs.append({key: program[key] for key in ("program", "last_pid")})
    rest = {key: value for key, value in point.items() if not key.endswith("_reached")}
    return dict(rest, programs=programs)


@pytest.fixture
def reached(wrench_dir):
    """A scratch directory in which this process reached three points."""
    wrench_dir.write("my-charm", "push-fails first=2 every=3\n")
    assert [wrench.is_active("my-charm", "push-fails") for _ in range(3)] == [True, True, False]
    assert not wrench.is_active("my-charm", "stop-fails")
    assert not wrench.is_active("net", "connect")
    return wrench_dir


def expected(category: str, feature: str, lines: int, fires: int) -> dict:
    return {
        "category": category,
        "feature": feature,
        "reached": True,
        "programs": [{"program": PROGRAM, "last_pid": os.getpid()}],
        "lines": lines,
        "fires": fires,
    }


def test_points_lists_each_point_reached_with_its_lines_and_fires(reached) -> None:
    assert [without_times(point) for point in wrench.points(dir=reached.path)] == [
        expected("my-charm", "push-fails", 1, 2),
        expected("my-charm", "stop-fails", 0, 0),
        expected("net", "connect", 0, 0),
    ]


def test_points_reads_the_trigger_directory_in_use_by_default(reached) -> None:
    assert wrench.get_dir() == str(reached.path)
    assert wrench.points() == wrench.points(dir=str(reached.path).encode())


def test_points_of_one_category(reached) -> None:
    assert [without_times(point) for point in wrench.points("net")] == [
        expected("net", "connect", 0, 0)
    ]
    assert wrench.points("nothing-reached") == []


def test_fires_are_none_when_a_line_counts_per_process(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails scope=process\n")
    assert wrench.is_active("my-charm", "push-fails")
    [point] = wrench.points()
    assert (point["lines"], point["fires"]) == (1, None)


def test_an_invalid_category_raises_with_the_commands_message(reached) -> None:
    with pytest.raises(wrench.CommandError, match=r'exit status 2: invalid category "a/b"'):
        wrench.points("a/b")


def test_a_binary_is_passed_to_the_command(reached) -> None:
    with pytest.raises(wrench.CommandError, match="/bin/true has no failure points recorded"):
        wrench.points(binary="/bin/true")


def test_a_refused_records_file_is_logged_and_the_rest_returned(reached, caplog) -> None:
    records = reached.path / ".wrench-state" / f"points-v1-{os.geteuid()}"
    records.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="wrench"):
        assert wrench.points() == []
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"ignored: {records} is writable by group or others")


def test_the_note_of_a_missing_directory_is_a_debug_message(tmp_path, caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="wrench"):
        assert wrench.points(dir=tmp_path / "none") == []
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, f"{tmp_path}/none does not exist: no point was recorded on this machine")
    ]


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda: wrench.points(b"net"),
            TypeError,
            "category must be a str, not bytes (decode it first)",
        ),
        (
            lambda: wrench.points("n\0et"),
            ValueError,
            "category 'n\\x00et' contains a NUL character",
        ),
        (
            lambda: wrench.points(dir=1),
            TypeError,
            "the directory must be a str, bytes, os.PathLike or None, not int",
        ),
        (
            lambda: wrench.points(binary="/bin/t\0rue"),
            ValueError,
            "the binary '/bin/t\\x00rue' contains a NUL character",
        ),
    ],
)
def test_arguments_are_checked_before_the_command_runs(call, error, message, monkeypatch) -> None:
    # A command that would fail if it ran.
    monkeypatch.setenv(wrench.COMMAND_ENV, "/nonexistent/wrench")
    with pytest.raises(error) as raised:
        call()
    assert str(raised.value) == f"wrench.points(): {message}"


def test_without_the_command_the_error_says_how_to_get_it(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(wrench.COMMAND_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError) as raised:
        wrench.points()
    assert str(raised.value) == (
        "the wrench command was not found in PATH; install the Debian package `wrench`, "
        "or set WRENCH_COMMAND to the command's absolute path"
    )


def test_a_relative_wrench_command_is_not_run(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(wrench.COMMAND_ENV, "wrench")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="'wrench', a relative path, so it is not run"):
        wrench.points()


def test_a_wrench_command_that_does_not_exist_is_an_error(monkeypatch) -> None:
    monkeypatch.setenv(wrench.COMMAND_ENV, "/nonexistent/wrench")
    with pytest.raises(FileNotFoundError, match="is '/nonexistent/wrench', which is not an"):
        wrench.points()


@pytest.mark.parametrize(
    "script, message",
    [
        ("echo 'not json'", "printed something that is not JSON"),
        ("echo '{\"points\": 3}'", "printed JSON without a list of points"),
        ("echo 'wrench: out of memory' >&2; exit 3", "failed with exit status 3: out of memory"),
        ("kill -9 $$", "was killed by signal 9"),
    ],
)
def test_a_command_that_misbehaves_raises(script, message, monkeypatch, tmp_path: Path) -> None:
    command = tmp_path / "wrench"
    command.write_text(f"#!/bin/sh\n{script}\n")
    command.chmod(0o755)
    monkeypatch.setenv(wrench.COMMAND_ENV, str(command))
    with pytest.raises(wrench.CommandError, match=re.escape(message)):
        wrench.points(dir="/nonexistent")
