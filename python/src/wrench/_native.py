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
