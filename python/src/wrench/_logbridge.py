"""The library's messages, delivered to the standard logging module.

The C library calls the logger from whatever thread logged, with no lock
held. A ctypes callback takes the GIL itself, so any thread may deliver.
The danger is the interpreter's exit: a callback entered after the
interpreter has started to tear down would block or crash. So an atexit
handler gives the library back its stderr sink. The library promises that,
once wrench_set_logger() returns, the old logger is never called again; it
waits for deliveries in flight, and the main thread does not hold the GIL
while it waits (ctypes releases it around the call), so those deliveries
can finish. Messages logged after that go to stderr, not to nothing.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os

from . import _native

# enum wrench_log_level: ERROR, WARN, INFO, DEBUG.
_LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)
_NAMES = (b"error", b"warning", b"info", b"debug")


def _to_stderr(level: int, message: bytes) -> None:
    """The library's own format, for when logging itself cannot take a message."""
    name = _NAMES[level] if 0 <= level < len(_NAMES) else b"error"
    try:
        os.write(2, b"wrench: " + name + b": " + message + b"\n")
    except OSError:
        pass


def _deliver(level: int, message: bytes, _ctx: object) -> None:
    # Nothing may propagate into C: ctypes would only print it, and the
    # message would be lost. A failing handler sends it to stderr instead.
    try:
        text = message.decode("utf-8", "backslashreplace")
        python_level = _LEVELS[level] if 0 <= level < len(_LEVELS) else logging.ERROR
        _native.logger.log(python_level, "%s", text)
    except BaseException:  # noqa: B036 - a callback from C must not raise
        _to_stderr(level, message)


# Referenced for the life of the process: C holds a pointer to it, and a
# delivery may still be returning from it when the logger is replaced.
_CALLBACK = _native.LOG_FN(_deliver)


def install(lib: ctypes.CDLL) -> None:
    """Routes the library's messages to the logger "wrench", until exit."""
    lib.wrench_set_logger(_CALLBACK, None)
    # Registered after logging's own atexit handler, so it runs before it:
    # logging is whole while the last deliveries finish.
    atexit.register(uninstall, lib)


def uninstall(lib: ctypes.CDLL) -> None:
    """Gives the library back its stderr sink; waits for deliveries in flight."""
    lib.wrench_set_logger(_native.LOG_FN(), None)  # a NULL pointer
