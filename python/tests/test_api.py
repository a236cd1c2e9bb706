"""Every public function, against the library built in this run."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

import wrench


def sequence(category: str, feature: str, n: int) -> str:
    return "".join("T" if wrench.is_active(category, feature) else "F" for _ in range(n))


def test_library_is_available() -> None:
    assert wrench.available()


def test_bare_line_fires_and_absent_feature_does_not(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails\n")
    assert wrench.is_active("my-charm", "push-fails") is True
    assert wrench.is_active("my-charm", "absent") is False
    assert wrench.is_active("other-charm", "push-fails") is False


def test_directives_are_the_library_s(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails first=2 every=3\n")
    assert sequence("my-charm", "push-fails", 6) == "TTFTTF"


def test_untrusted_file_is_ignored(wrench_dir) -> None:
    path = wrench_dir.write("my-charm", "push-fails\n")
    path.chmod(0o666)
    assert wrench.is_active("my-charm", "push-fails") is False


def test_utf8_names_reach_the_library(wrench_dir) -> None:
    wrench_dir.write("chärm", "pûsh\n")
    assert wrench.is_active("chärm", "pûsh")


def test_invalid_category_answers_false_without_raising(wrench_dir) -> None:
    # The library, not Python, decides what a valid name is.
    assert wrench.is_active("a/b", "push") is False
    assert wrench.is_active("", "push") is False


@pytest.mark.parametrize("bad", [b"my-charm", None, 3, Path("x")])
def test_is_active_rejects_a_category_that_is_not_str(bad: object) -> None:
    with pytest.raises(TypeError, match=r"is_active\(\): category must be a str"):
        wrench.is_active(bad, "push")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"is_active\(\): feature must be a str"):
        wrench.is_active("my-charm", bad)  # type: ignore[arg-type]


def test_is_active_rejects_nul_and_lone_surrogates() -> None:
    with pytest.raises(ValueError, match="NUL"):
        wrench.is_active("my\0charm", "push")
    with pytest.raises(ValueError, match="UTF-8"):
        wrench.is_active("my-charm", "push\udcff")


def test_set_enabled_returns_the_previous_state(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails\n")
    assert wrench.set_enabled(False) is True
    assert wrench.is_enabled() is False
    assert wrench.is_active("my-charm", "push-fails") is False
    assert wrench.set_enabled(False) is False
    assert wrench.set_enabled(True) is False
    assert wrench.is_enabled() is True
    assert wrench.is_active("my-charm", "push-fails") is True


@pytest.mark.parametrize("bad", [1, "true", None])
def test_set_enabled_wants_a_bool(bad: object) -> None:
    with pytest.raises(TypeError, match="expected a bool"):
        wrench.set_enabled(bad)  # type: ignore[arg-type]


def test_disabled_switches_off_and_restores(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails\n")
    with wrench.disabled():
        assert not wrench.is_enabled()
        assert not wrench.is_active("my-charm", "push-fails")
    assert wrench.is_enabled()
    with pytest.raises(RuntimeError):
        with wrench.disabled():
            raise RuntimeError("inside")
    assert wrench.is_enabled()


def test_disabled_keeps_a_switch_that_was_off(wrench_dir) -> None:
    wrench.set_enabled(False)
    with wrench.disabled():
        pass
    assert not wrench.is_enabled()


def test_set_dir_and_get_dir(wrench_dir, scratch: Path) -> None:
    assert wrench.get_dir() == str(wrench_dir.path)
    wrench.set_dir(scratch)
    assert wrench.get_dir() == str(scratch)
    wrench.set_dir(str(wrench_dir.path).encode())
    assert wrench.get_dir() == str(wrench_dir.path)


def test_set_dir_none_goes_back_to_the_default(wrench_dir) -> None:
    # $WRENCH_DIR was read once, at the library's first call: the default
    # is what get_dir() said before any set_dir().
    wrench.set_dir(None)
    default = wrench.get_dir()
    wrench.set_dir(wrench_dir.path)
    assert wrench.get_dir() != default
    wrench.set_dir(None)
    assert wrench.get_dir() == default


def test_set_dir_forgets_counters(wrench_dir) -> None:
    # Per-process counters (machine-wide ones outlive the process and the
    # call, by design: see test_counters_are_machine_wide).
    wrench_dir.write("my-charm", "push-fails first=2 every=3 scope=process\n")
    assert sequence("my-charm", "push-fails", 2) == "TT"
    wrench.set_dir(wrench_dir.path)
    assert sequence("my-charm", "push-fails", 3) == "TTF"


@pytest.mark.parametrize("bad", ["relative/dir", "", "/tmp/../etc"])
def test_set_dir_rejects_what_the_library_rejects(wrench_dir, bad: str) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        wrench.set_dir(bad)
    assert wrench.get_dir() == str(wrench_dir.path)


def test_set_dir_too_long_is_an_oserror(wrench_dir) -> None:
    with pytest.raises(OSError) as raised:
        wrench.set_dir("/" + "x" * 5000)
    assert raised.value.errno == errno.ENAMETOOLONG


def test_set_dir_type_and_nul_checks() -> None:
    with pytest.raises(TypeError, match="str, bytes, os.PathLike or None"):
        wrench.set_dir(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        wrench.set_dir("/tmp/a\0b")


def test_same_seed_same_decisions(wrench_dir) -> None:
    wrench_dir.write("my-charm", "coin chance=50% scope=process\n")
    wrench.set_seed(7)
    first = sequence("my-charm", "coin", 64)
    wrench.set_seed(7)
    assert sequence("my-charm", "coin", 64) == first
    assert "T" in first and "F" in first
    wrench.set_seed(2**64 - 1)
    wrench.set_seed(None)


def test_set_seed_forgets_counters(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails first=1 every=2 scope=process\n")
    assert sequence("my-charm", "push-fails", 1) == "T"
    wrench.set_seed(1)
    assert sequence("my-charm", "push-fails", 2) == "TF"
    wrench.set_seed(None)


def test_counters_are_machine_wide(wrench_dir) -> None:
    # The same line, counted by separate processes: the pattern goes on.
    wrench_dir.write("my-charm", "push-fails first=2 every=3\n")
    script = (
        "import sys, wrench; wrench.set_dir(sys.argv[1]); "
        "print('T' if wrench.is_active('my-charm', 'push-fails') else 'F')"
    )
    got = "".join(
        subprocess.run([sys.executable, "-c", script, str(wrench_dir.path)],
                       check=True, capture_output=True, text=True).stdout.strip()
        for _ in range(6))
    assert got == "TTFTTF"


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**64, ValueError), (True, TypeError), (1.5, TypeError), ("7", TypeError)])
def test_set_seed_checks_its_argument(bad: object, error: type) -> None:
    with pytest.raises(error, match=r"set_seed\(\)"):
        wrench.set_seed(bad)  # type: ignore[arg-type]


def test_set_recheck_ms_relaxed_then_strict(wrench_dir) -> None:
    wrench.set_recheck_ms(60_000)
    try:
        wrench_dir.write("my-charm", "push-fails\n")
        assert wrench.is_active("my-charm", "push-fails")
        # Relaxed: a change is seen within the minute, not at once (the
        # two calls are microseconds apart).
        wrench_dir.write("my-charm", "other\n")
        assert wrench.is_active("my-charm", "push-fails")
    finally:
        wrench.set_recheck_ms(0)
    # Strict again: seen by the next call.
    assert not wrench.is_active("my-charm", "push-fails")


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**32, ValueError), (None, TypeError)])
def test_set_recheck_ms_checks_its_argument(bad: object, error: type) -> None:
    with pytest.raises(error, match=r"set_recheck_ms\(\)"):
        wrench.set_recheck_ms(bad)  # type: ignore[arg-type]


def test_point_raises_an_instance_afresh(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails first=2 every=3\n")
    failure = ConnectionError("pebble: connection refused")
    for _ in range(2):
        with pytest.raises(ConnectionError, match="connection refused") as raised:
            wrench.point("my-charm", "push-fails", raises=failure)
        assert raised.value is failure
        # Raised afresh: the traceback does not grow from one raise to the next.
        assert len(list(_frames(raised.value.__traceback__))) <= 2
    assert wrench.point("my-charm", "push-fails", raises=failure) is None


def _frames(tb):  # type: ignore[no-untyped-def]
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_point_instantiates_a_class_naming_the_point(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails\n")
    with pytest.raises(TimeoutError, match="my-charm/push-fails fired"):
        wrench.point("my-charm", "push-fails", raises=TimeoutError)


def test_point_checks_raises_even_when_inactive() -> None:
    with pytest.raises(TypeError, match="exception instance or class"):
        wrench.point("my-charm", "push-fails", raises="boom")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exception instance or class"):
        wrench.point("my-charm", "push-fails", raises=int)  # type: ignore[arg-type]
