"""The pytest plugin, loaded through its entry point, in an inner session."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

import wrench
from conftest import run_python, write_trigger

PROGRAM = os.path.basename(os.path.realpath(sys.executable))

INNER_TESTS = """
import os
import wrench

# Called while pytest imports this module, before any test runs.
AT_IMPORT = wrench.is_active("my-charm", "push-fails")

def test_off_already_when_test_modules_are_imported():
    assert AT_IMPORT is False

def test_stray_trigger_file_does_not_fire():
    assert not wrench.is_enabled()
    assert not wrench.is_active("my-charm", "push-fails")

def test_wrench_enabled_switches_on(wrench_enabled):
    assert wrench.is_enabled()
    assert wrench.is_active("my-charm", "push-fails")

def test_wrench_dir_gives_a_scratch_directory(wrench_dir):
    assert wrench.get_dir() == str(wrench_dir.path)
    assert not wrench.is_active("my-charm", "push-fails")
    wrench_dir.write("my-charm", "push-fails first=2 every=3\\n")
    assert [wrench.is_active("my-charm", "push-fails") for _ in range(3)] == [True, True, False]
    wrench_dir.remove("my-charm")
    assert not wrench.is_active("my-charm", "push-fails")

def test_off_again_after_a_test_that_asked():
    assert not wrench.is_enabled()
    assert wrench.get_dir() == os.environ["WRENCH_DIR"]
"""


@pytest.fixture
def stray_trigger(scratch, monkeypatch):
    # A developer's machine with a trigger file in the default directory.
    write_trigger(scratch, "my-charm", "push-fails\n")
    monkeypatch.setenv("WRENCH_DIR", str(scratch))
    return scratch


def test_plugin_is_loaded_in_this_session(pytestconfig) -> None:
    assert pytestconfig.pluginmanager.has_plugin("wrench")
    assert not wrench.is_enabled()


def test_plugin_switches_wrench_off_unless_a_test_asks(pytester, stray_trigger) -> None:
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_without_the_plugin_the_stray_file_fires(pytester, stray_trigger) -> None:
    # The same session with the plugin disabled: what it protects against.
    pytester.makepyfile(
        test_inner="""
import wrench

def test_stray_trigger_file_fires():
    assert wrench.is_enabled()
    assert wrench.is_active("my-charm", "push-fails")
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:wrench", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_fixtures_skip_without_the_library(pytester, monkeypatch) -> None:
    monkeypatch.setenv(wrench.LIBRARY_ENV, "/nonexistent/libwrench.so.1")
    pytester.makepyfile(
        test_inner="""
def test_needs_wrench(wrench_dir):
    raise AssertionError("not reached")
"""
    )
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*libwrench.so.1 is not loaded*"])


COVERAGE_TESTS = """
import os
import subprocess
import sys

import wrench

def test_push_retries(wrench_dir):
    wrench_dir.write("my-charm", "push-fails first=2 every=3\\n")
    assert [wrench.is_active("my-charm", "push-fails") for _ in range(3)] == [True, True, False]
    assert not wrench.is_active("my-charm", "stop-fails")

def test_push_gives_up(wrench_dir):
    wrench_dir.write("my-charm", "push-fails\\n")
    assert wrench.is_active("my-charm", "push-fails")

def test_a_child_process(wrench_dir):
    wrench_dir.write("net", "connect\\n")
    code = "import wrench; assert wrench.is_active('net', 'connect')"
    environment = dict(os.environ, WRENCH_DIR=str(wrench_dir.path))
    subprocess.run([sys.executable, "-c", code], env=environment, check=True)

def test_the_real_directory(wrench_enabled):
    assert wrench.is_active("my-charm", "deploy-fails")
"""


def test_coverage_lists_the_points_the_session_reached(pytester, stray_trigger) -> None:
    # Reached in the real directory before the session: not the session's.
    write_trigger(stray_trigger, "my-charm", "deploy-fails\n")
    run_python(
        "import wrench; assert not wrench.is_active('my-charm', 'old-point')",
        WRENCH_DIR=str(stray_trigger),
    ).check_returncode()
    assert [point["feature"] for point in wrench.points(dir=stray_trigger)] == ["old-point"]
    time.sleep(1.1)  # times are to the second
    pytester.makepyfile(test_inner=COVERAGE_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--wrench-coverage", "--wrench-coverage-json=coverage.json"
    )
    result.assert_outcomes(passed=4)
    lines = result.stdout.lines
    start = lines.index(next(line for line in lines if " wrench coverage " in line))
    assert lines[start + 1 : start + 7] == [
        "CATEGORY  FEATURE       LINES  FIRES  PROGRAMS",
        f"my-charm  deploy-fails  1      1      {PROGRAM}",
        f"my-charm  push-fails    2      3      {PROGRAM}",
        f"my-charm  stop-fails    0      0      {PROGRAM}",
        f"net       connect       1      1      {PROGRAM}",
        "4 point(s) reached, 3 fired",
    ]
    written = json.loads((pytester.path / "coverage.json").read_text())
    assert [(p["category"], p["feature"], p["lines"], p["fires"]) for p in written] == [
        ("my-charm", "deploy-fails", 1, 1),
        ("my-charm", "push-fails", 2, 3),
        ("my-charm", "stop-fails", 0, 0),
        ("net", "connect", 1, 1),
    ]
    # This process's and the child's records, under the one program name.
    assert [program["program"] for program in written[3]["programs"]] == [PROGRAM]


def test_without_the_option_the_command_is_not_run(pytester, tmp_path, monkeypatch) -> None:
    ran = tmp_path / "ran"
    command = tmp_path / "wrench"
    command.write_text(f"#!/bin/sh\ntouch {ran}\n")
    command.chmod(0o755)
    monkeypatch.setenv(wrench.COMMAND_ENV, str(command))
    pytester.makepyfile(test_inner=COVERAGE_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "push")
    result.assert_outcomes(passed=2, deselected=2)
    assert not ran.exists()
    assert not any("wrench coverage" in line for line in result.stdout.lines)


def test_coverage_without_the_command_is_a_usage_error(pytester, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(wrench.COMMAND_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    pytester.makepyfile(test_inner=COVERAGE_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--wrench-coverage")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --wrench-coverage: the wrench command was not found in PATH; install the "
         "Debian package `wrench`, or set WRENCH_COMMAND to the command's absolute path"]
    )
