"""The pytest plugin, loaded through its entry point, in an inner session."""

from __future__ import annotations

import pytest

import wrench
from conftest import write_trigger

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
