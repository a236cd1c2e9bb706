"""Finding and loading libwrench.so.1: the one module that knows its C types.

The binding uses ctypes (docs/python.md says why): nothing to compile and no
dependency, so a program keeps its failure points on a machine that has
neither the library nor a compiler.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from typing import Optional

SONAME = "libwrench.so.1"

# Names, by absolute path, the shared library to load instead of the
# system's libwrench.so.1: tests point it at the library built in the same run.
LIBRARY_ENV = "WRENCH_LIBRARY"

# The C logger's signature: void fn(enum wrench_log_level, const char *, void *).
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

logger = logging.getLogger("wrench")

# WRENCH_VALUE_MAX: the longest value= a line gives, in bytes, without its NUL.
VALUE_MAX = 255


class FaultStruct(ctypes.Structure):
    """struct wrench_fault, field for field: wrench_fault() fills one."""

    _fields_ = [
        ("errnum", ctypes.c_int),
        ("value", ctypes.c_char * (VALUE_MAX + 1)),
        ("wrench__reserved", ctypes.c_uint64 * 8),
    ]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _c_size_of_fault() -> int:
    """sizeof(struct wrench_fault) by C's rules, from its members' sizes alone.

    The reserved uint64_t array starts at the next multiple of its
    alignment, and the struct ends at a multiple of its largest member
    alignment: on x86-64, 4 + 256, then 4 bytes of padding, then 64: 328.
    """
    align = max(ctypes.alignment(ctypes.c_uint64), ctypes.alignment(ctypes.c_int))
    reserved_at = _round_up(ctypes.sizeof(ctypes.c_int) + VALUE_MAX + 1,
                            ctypes.alignment(ctypes.c_uint64))
    return _round_up(reserved_at + 8 * ctypes.sizeof(ctypes.c_uint64), align)


# The library writes the whole struct when a point fires (it zeroes the
# reserved part), so a copy shorter than C's would let it write past the
# end of Python's memory: stop at import rather than ever pass one.
if ctypes.sizeof(FaultStruct) != _c_size_of_fault():
    raise ImportError(
        f"wrench: ctypes lays out struct wrench_fault in {ctypes.sizeof(FaultStruct)} bytes, "
        f"C in {_c_size_of_fault()}: the binding does not match this platform"
    )


def _library_name() -> Optional[str]:
    """The file to load: WRENCH_LIBRARY's, else the soname; None if refused.

    A relative WRENCH_LIBRARY is refused, as wrench_set_dir() refuses a
    relative directory: the dynamic linker would look for it in the current
    directory or along its search path, and whoever can write there would
    choose the code this process runs. An empty value counts as unset.
    """
    # python -E ignores PYTHON* variables; it ignores this one too.
    if sys.flags.ignore_environment:
        return SONAME
    named = os.environ.get(LIBRARY_ENV)
    if not named:
        return SONAME
    if not os.path.isabs(named):
        logger.warning(
            "%s is %r, a relative path, so it is ignored and every failure point "
            "answers False; set %s to the library's absolute path, or unset it "
            "to load the installed %s",
            LIBRARY_ENV,
            named,
            LIBRARY_ENV,
            SONAME,
        )
        return None
    return named


def _declare(lib: ctypes.CDLL) -> None:
    """Gives every function its prototype, so ctypes converts and checks."""
    c_char_p, c_bool, c_int = ctypes.c_char_p, ctypes.c_bool, ctypes.c_int
    lib.wrench_is_active.argtypes = [c_char_p, c_char_p]
    lib.wrench_is_active.restype = c_bool
    lib.wrench_set_enabled.argtypes = [c_bool]
    lib.wrench_set_enabled.restype = c_bool
    lib.wrench_is_enabled.argtypes = []
    lib.wrench_is_enabled.restype = c_bool
    lib.wrench_set_dir.argtypes = [c_char_p]
    lib.wrench_set_dir.restype = c_int
    lib.wrench_get_dir.argtypes = []
    lib.wrench_get_dir.restype = c_char_p
    lib.wrench_set_seed.argtypes = [ctypes.POINTER(ctypes.c_uint64)]
    lib.wrench_set_seed.restype = None
    lib.wrench_set_recheck_ms.argtypes = [ctypes.c_uint]
    lib.wrench_set_recheck_ms.restype = c_int
    lib.wrench_set_logger.argtypes = [LOG_FN, ctypes.c_void_p]
    lib.wrench_set_logger.restype = None
    if has_fault(lib):
        lib.wrench_error.argtypes = [c_char_p, c_char_p]
        lib.wrench_error.restype = c_int
        lib.wrench_fault.argtypes = [c_char_p, c_char_p, ctypes.POINTER(FaultStruct)]
        lib.wrench_fault.restype = c_bool


def has_fault(lib: ctypes.CDLL) -> bool:
    """Answers whether LIB has wrench_error() and wrench_fault(), new in 1.2.0.

    An older libwrench.so.1 (same soname) lacks them. It knows no errno= or
    value= either, so the module asks it wrench_is_active() instead and
    answers as 1.2.0 does for a line without them (EIO, ""): losing every
    failure point to a missing symbol would be worse.
    """
    return hasattr(lib, "wrench_error") and hasattr(lib, "wrench_fault")


def load() -> Optional[ctypes.CDLL]:
    """Loads the library, or answers None after one message.

    The message is a WARNING when WRENCH_LIBRARY is refused, else a DEBUG
    one: a machine without the library is the normal production case.
    ctypes.CDLL (not PyDLL) releases the GIL during every call: a call that
    sleeps on a slow= line, or waits for a logger, never stops other threads.
    """
    name = _library_name()
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        _declare(lib)
    except (OSError, AttributeError) as error:
        logger.debug(
            "%s could not be loaded (%s): every failure point answers False; "
            "install libwrench1 or set %s to the library's absolute path to use them",
            name,
            error,
            LIBRARY_ENV,
        )
        return None
    return lib
