"""error(), fault() and raise_if_active(): what a line's errno= and value=
tell, against the library built in this run."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
from typing import Callable, List

import pytest

import wrench
from wrench import _native


def raised(category: str, feature: str) -> bool:
    try:
        wrench.raise_if_active(category, feature)
    except OSError:
        return True
    return False


def test_error_is_the_line_s_errno_or_eio_or_0(wrench_dir) -> None:
    wrench_dir.write("disk", "write errno=ENOSPC\nsync\n")
    assert wrench.error("disk", "write") == errno.ENOSPC
    assert wrench.error("disk", "sync") == errno.EIO
    assert wrench.error("disk", "read") == 0
    assert wrench.error("other", "write") == 0


def test_error_follows_the_line_s_pattern(wrench_dir) -> None:
    wrench_dir.write("disk", "write first=2 every=3 errno=ENOSPC\n")
    got = [wrench.error("disk", "write") for _ in range(6)]
    assert got == [errno.ENOSPC, errno.ENOSPC, 0, errno.ENOSPC, errno.ENOSPC, 0]


def test_a_numeric_errno_is_given_as_written(wrench_dir) -> None:
    wrench_dir.write("disk", "write errno=1234\n")
    assert wrench.error("disk", "write") == 1234
    with pytest.raises(OSError) as got:
        wrench.raise_if_active("disk", "write")
    assert got.value.errno == 1234
    assert got.value.strerror == os.strerror(1234)


def test_fault_is_none_when_the_point_does_not_fire(wrench_dir) -> None:
    wrench_dir.write("disk", "write first=1 every=2 errno=ENOSPC value=x\n")
    assert wrench.fault("disk", "read") is None
    assert wrench.fault("disk", "write") is not None
    assert wrench.fault("disk", "write") is None


def test_fault_tells_errno_and_decoded_value(wrench_dir) -> None:
    wrench_dir.write("disk", "write errno=ENOSPC value=disk%20full\nsync\n")
    got = wrench.fault("disk", "write")
    assert got == wrench.Fault(errno=errno.ENOSPC, value="disk full", value_bytes=b"disk full")
    assert wrench.fault("disk", "sync") == wrench.Fault(errno.EIO, "", b"")
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.errno = 0  # type: ignore[misc]


def test_fault_keeps_a_byte_that_is_not_utf8(wrench_dir) -> None:
    wrench_dir.write("disk", "write value=%FFok%25\n")
    got = wrench.fault("disk", "write")
    assert got is not None
    assert got.value_bytes == b"\xffok%"
    assert got.value == "\udcffok%"
    assert got.value.encode("utf-8", "surrogateescape") == got.value_bytes


def test_fault_decodes_utf8_and_gives_the_longest_value_whole(wrench_dir) -> None:
    longest = "v" * _native.VALUE_MAX
    wrench_dir.write("disk", f"write value=plein%20d%C3%A9j%C3%A0\nsync value={longest}\n")
    assert wrench.fault("disk", "write").value == "plein déjà"  # type: ignore[union-attr]
    assert wrench.fault("disk", "sync").value == longest  # type: ignore[union-attr]


def test_the_library_writes_exactly_the_struct_python_passes(wrench_dir) -> None:
    # sizeof as C says it: on a fire the library zeroes the reserved words,
    # the struct's last bytes. They must be ctypes' last bytes too, and the
    # byte after them must be left alone.
    wrench_dir.write("disk", "write value=x\n")
    size = ctypes.sizeof(_native.FaultStruct)
    buffer = (ctypes.c_ubyte * (size + 64))(*([0xAA] * (size + 64)))
    out = _native.FaultStruct.from_buffer(buffer)
    assert wrench._lib.wrench_fault(b"disk", b"write", ctypes.byref(out))
    assert out.errnum == errno.EIO and out.value == b"x"
    assert list(out.wrench__reserved) == [0] * 8
    assert bytes(buffer[size:]) == b"\xaa" * 64


def test_raise_if_active_raises_the_line_s_errno(wrench_dir) -> None:
    wrench_dir.write("disk", "write errno=ENOSPC value=ignored\nsync\n")
    with pytest.raises(OSError) as got:
        wrench.raise_if_active("disk", "write")
    assert type(got.value) is OSError
    assert got.value.errno == errno.ENOSPC
    assert got.value.strerror == os.strerror(errno.ENOSPC)
    assert got.value.args == (errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OSError) as got:
        wrench.raise_if_active("disk", "sync")
    assert got.value.errno == errno.EIO


@pytest.mark.parametrize(
    "name, subclass",
    [("ENOENT", FileNotFoundError), ("EACCES", PermissionError), ("ETIMEDOUT", TimeoutError)],
)
def test_raise_if_active_gives_python_s_subclass(wrench_dir, name: str, subclass: type) -> None:
    wrench_dir.write("disk", f"open errno={name}\n")
    with pytest.raises(subclass) as got:
        wrench.raise_if_active("disk", "open")
    assert got.value.errno == getattr(errno, name)


def test_raise_if_active_returns_none_when_quiet(wrench_dir) -> None:
    wrench_dir.write("disk", "write first=1 every=2 errno=ENOSPC\n")
    assert raised("disk", "write")
    assert wrench.raise_if_active("disk", "write") is None
    assert wrench.raise_if_active("disk", "read") is None


def test_every_entry_point_counts_in_one_sequence(wrench_dir) -> None:
    # One call, one decision, whichever function asks: the pattern of
    # first=2 every=3 goes on across them. The order makes each function
    # meet both a fire and a quiet call.
    wrench_dir.write("disk", "write first=2 every=3 errno=ENOSPC\n")
    asks: List[Callable[[str, str], bool]] = [
        lambda c, f: wrench.error(c, f) != 0,
        lambda c, f: wrench.fault(c, f) is not None,
        wrench.is_active,
        raised,
    ]
    order = [0, 1, 2, 3, 2, 0, 1, 0, 1, 2, 3, 3]
    got = [asks[i]("disk", "write") for i in order]
    assert got == [True, True, False] * 4


def test_switched_off_nothing_fires(wrench_dir) -> None:
    wrench_dir.write("disk", "write errno=ENOSPC value=x\n")
    with wrench.disabled():
        assert wrench.error("disk", "write") == 0
        assert wrench.fault("disk", "write") is None
        assert wrench.raise_if_active("disk", "write") is None
    assert wrench.error("disk", "write") == errno.ENOSPC


def test_an_older_library_answers_eio_and_counts_once(wrench_dir, monkeypatch) -> None:
    # libwrench.so.1 before 1.2.0 has no wrench_error() or wrench_fault();
    # the module asks its wrench_is_active() instead.
    monkeypatch.setattr(wrench, "_has_fault", False)
    wrench_dir.write("disk", "write first=2 every=3\n")
    assert wrench.error("disk", "write") == errno.EIO
    assert wrench.fault("disk", "write") == wrench.Fault(errno.EIO, "", b"")
    assert wrench.error("disk", "write") == 0
    with pytest.raises(OSError) as got:
        wrench.raise_if_active("disk", "write")
    assert got.value.errno == errno.EIO
    assert wrench.fault("disk", "write") is not None
    assert wrench.fault("disk", "write") is None


FUNCTIONS = [
    pytest.param(wrench.error, id="error"),
    pytest.param(wrench.fault, id="fault"),
    pytest.param(wrench.raise_if_active, id="raise_if_active"),
]


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("bad", [b"disk", None, 3])
def test_names_that_are_not_str_are_a_type_error(function, bad: object) -> None:
    name = function.__name__
    with pytest.raises(TypeError, match=rf"{name}\(\): category must be a str"):
        function(bad, "write")
    with pytest.raises(TypeError, match=rf"{name}\(\): feature must be a str"):
        function("disk", bad)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_names_that_cannot_reach_the_library_are_a_value_error(function) -> None:
    with pytest.raises(ValueError, match="NUL"):
        function("di\0sk", "write")
    with pytest.raises(ValueError, match="UTF-8"):
        function("disk", "write\udcff")


def test_an_invalid_category_answers_quietly(wrench_dir) -> None:
    # As for is_active(): the library decides, logs, and nothing is raised.
    assert wrench.error("a/b", "write") == 0
    assert wrench.fault("", "write") is None
    assert wrench.raise_if_active("a/b", "write") is None
