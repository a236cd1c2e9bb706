"""Failure points that stay in the code, switched on by trusted trigger files.

A thin binding over the installed libwrench.so.1 (wrench(3), wrench(5)):
the parser, the trust rules and the counters are the library's, and this
module adds nothing but argument checks. Where the library is not
installed, importing still works and every failure point answers False.

is_active() answers whether a failure point fires now; error(), fault()
and raise_if_active() ask the same question and tell how the line that
fired fails (its errno= and value=).

Messages go to the logger "wrench" of the standard logging module, from
the moment this module is imported. points() lists the failure points
reached on this machine, by running the wrench command. Full guide:
docs/python.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
from typing import Any, Dict, Iterator, List, Optional, Type, Union

from . import _logbridge, _native, _points
from ._checks import name as _name
from ._checks import path as _path
from ._checks import unsigned as _unsigned
from ._native import LIBRARY_ENV
from ._points import COMMAND_ENV, CommandError

__all__ = [
    "COMMAND_ENV",
    "LIBRARY_ENV",
    "CommandError",
    "Fault",
    "available",
    "disabled",
    "error",
    "fault",
    "get_dir",
    "is_active",
    "is_enabled",
    "point",
    "points",
    "raise_if_active",
    "set_dir",
    "set_enabled",
    "set_recheck_ms",
    "set_seed",
]

__version__ = "1.2.0"

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

_lib = _native.load()
if _lib is not None:
    _logbridge.install(_lib)
# Whether the library tells errno= and value=; see _native.has_fault().
_has_fault = _lib is not None and _native.has_fault(_lib)


def available() -> bool:
    """Answers whether libwrench.so.1 was loaded; without it nothing ever fires."""
    return _lib is not None


def is_active(category: str, feature: str) -> bool:
    """Answers whether the failure point FEATURE of CATEGORY should fail now.

    True when a line of the trusted trigger file <dir>/CATEGORY names
    FEATURE and fires on this call; the line may instead make the call
    sleep (slow=) or kill the process (kill). Any problem with the file
    or the names answers False and is logged, never raised; only a
    category or feature that is not a str (TypeError) or holds a NUL
    character or a lone surrogate (ValueError) raises.
    """
    raw_category = _name(category, "category", "is_active")
    raw_feature = _name(feature, "feature", "is_active")
    if _lib is None:
        return False
    return bool(_lib.wrench_is_active(raw_category, raw_feature))


@dataclasses.dataclass(frozen=True)
class Fault:
    """How the line that made a failure point fire says it fails.

    errno is the line's errno= (a number), or errno.EIO when it names
    none. value is its value=, percent-decoded, "" when it has none;
    value_bytes is the same bytes, as the library gave them. They are
    decoded as UTF-8 with "surrogateescape", whatever the locale (as
    os.fsdecode() does in a UTF-8 locale), so no byte is lost: one that is
    not UTF-8 (value=%FF) becomes a lone surrogate, and
    value.encode("utf-8", "surrogateescape") gives value_bytes back.
    """

    errno: int
    value: str
    value_bytes: bytes


def _error(category: bytes, feature: bytes) -> int:
    """The library's one decision as an errno, or 0; names already checked."""
    if _lib is None:
        return 0
    if not _has_fault:
        return errno.EIO if _lib.wrench_is_active(category, feature) else 0
    return int(_lib.wrench_error(category, feature))


def error(category: str, feature: str) -> int:
    """Answers is_active()'s question as an error number: 0 when the point
    does not fire, else the errno of the line that fired (errno=), or
    errno.EIO when it names none. One call is one decision, counted as
    one call of is_active() is. Raises as is_active() does, only for a
    category or feature that is not a str or cannot reach the library.
    """
    return _error(_name(category, "category", "error"), _name(feature, "feature", "error"))


def fault(category: str, feature: str) -> Optional[Fault]:
    """Answers is_active()'s question with what the line that fired says:
    None when the point does not fire, else a Fault with the line's errno
    and value. One call is one decision, as for is_active(), and raises
    as it does.
    """
    raw_category = _name(category, "category", "fault")
    raw_feature = _name(feature, "feature", "fault")
    if _lib is None:
        return None
    if not _has_fault:
        active = _lib.wrench_is_active(raw_category, raw_feature)
        return Fault(errno.EIO, "", b"") if active else None
    out = _native.FaultStruct()
    if not _lib.wrench_fault(raw_category, raw_feature, ctypes.byref(out)):
        return None
    # .value stops at the NUL the library ends the text with.
    raw = out.value
    return Fault(out.errnum, raw.decode("utf-8", "surrogateescape"), raw)


def raise_if_active(category: str, feature: str) -> None:
    """Raises OSError(errno, os.strerror(errno)) with the errno of the line
    that fired, else returns None. Python picks the subclass for the
    errno, as for any OSError: FileNotFoundError for ENOENT,
    PermissionError for EACCES, a plain OSError for ENOSPC or EIO.

        wrench.raise_if_active("my-charm", "write-config")
    """
    number = _error(
        _name(category, "category", "raise_if_active"),
        _name(feature, "feature", "raise_if_active"),
    )
    if number:
        raise OSError(number, os.strerror(number))


def point(
    category: str,
    feature: str,
    raises: Union[BaseException, Type[BaseException]],
) -> None:
    """Raises RAISES when the failure point fires, else returns None.

    RAISES is an exception instance, raised afresh each time, or an
    exception class, instantiated with a message naming the point:

        wrench.point("my-charm", "push", raises=ConnectionError)
    """
    is_class = isinstance(raises, type) and issubclass(raises, BaseException)
    if not is_class and not isinstance(raises, BaseException):
        raise TypeError(
            "wrench.point(): raises must be an exception instance or class, "
            f"not {type(raises).__name__}"
        )
    if not is_active(category, feature):
        return
    if isinstance(raises, BaseException):
        raise raises.with_traceback(None)
    raise raises(f"failure point {category}/{feature} fired (wrench)")


def set_enabled(enabled: bool) -> bool:
    """Turns every failure point on (True, the initial state) or off.

    Returns the previous state. Off, a failure point makes no system call.
    Without the library the switch stays off and this returns False.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"wrench.set_enabled(): expected a bool, not {type(enabled).__name__}")
    if _lib is None:
        return False
    return bool(_lib.wrench_set_enabled(enabled))


def is_enabled() -> bool:
    """Answers the global switch; always False without the library."""
    if _lib is None:
        return False
    return bool(_lib.wrench_is_enabled())


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Switches every failure point off inside the block, then restores the switch.

    The switch is process-wide: other threads see it off too.
    """
    previous = set_enabled(False)
    try:
        yield
    finally:
        set_enabled(previous)


def set_dir(path: Optional[PathArg]) -> None:
    """Makes PATH, an absolute path, the directory of trigger files.

    None goes back to the default ($WRENCH_DIR, else /var/lib/juju/wrench).
    Forgets every cached file and every directive counter. Raises
    ValueError for an empty or relative path or one with a ".." component,
    OSError (ENAMETOOLONG) for one too long. Without the library only the
    type is checked.
    """
    raw = None if path is None else _path(path, "set_dir")
    if _lib is None:
        return
    rc = _lib.wrench_set_dir(raw)
    if rc == -errno.EINVAL:
        raise ValueError(
            f"wrench.set_dir(): {path!r} is not usable: expected an absolute path "
            "without a '..' component"
        )
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc), os.fsdecode(raw) if raw else path)


def get_dir() -> Optional[str]:
    """Answers the directory of trigger files in use.

    None without the library, or when the default is unusable ($WRENCH_DIR
    relative): every failure point is then inactive.
    """
    if _lib is None:
        return None
    raw = _lib.wrench_get_dir()
    return None if raw is None else os.fsdecode(raw)


def set_seed(seed: Optional[int]) -> None:
    """Makes chance= decisions reproducible: the same seed, the same sequence.

    SEED is 0 to 2**64-1; None goes back to $WRENCH_SEED, else the system's
    random source. Forgets every directive counter, as set_dir() does.
    """
    if seed is None:
        pointer = None
    else:
        value = ctypes.c_uint64(_unsigned(seed, 64, "the seed", "set_seed"))
        pointer = ctypes.pointer(value)
    if _lib is not None:
        _lib.wrench_set_seed(pointer)


def set_recheck_ms(ms: int) -> None:
    """Chooses how soon a change to the trigger files is seen.

    0 (strict, the default): by the next call. MS > 0 (relaxed, for hot
    paths): within MS milliseconds, and no system call in the steady state.
    """
    value = _unsigned(ms, 32, "ms", "set_recheck_ms")
    if _lib is not None:
        _lib.wrench_set_recheck_ms(value)


def points(
    category: Optional[str] = None,
    *,
    dir: Optional[PathArg] = None,
    binary: Optional[PathArg] = None,
) -> List[Dict[str, Any]]:
    """Lists the failure points reached on this machine, as `wrench points` does.

    Runs `wrench --json points` on DIR (default: get_dir(); without it, the
    command's own default) and answers its "points": one dict per point,
    with the programs that reached it, when, the lines of CATEGORY's file
    naming it and their fires (None when they cannot be known). CATEGORY
    keeps that category's points; BINARY keeps the points compiled into
    that executable, each reached or not.

    The command is $WRENCH_COMMAND (an absolute path), else `wrench` in
    PATH; without it, FileNotFoundError. A file of records the command
    refuses is logged as a WARNING and its points are missing from the
    list; any other failure of the command raises CommandError.
    """
    raw_category = None if category is None else _name(category, "category", "points")
    if dir is None:
        dir = get_dir()
    raw_dir = None if dir is None else _path(dir, "points", "the directory")
    raw_binary = None if binary is None else _path(binary, "points", "the binary")
    return _points.run_points(raw_dir, raw_category, raw_binary)
