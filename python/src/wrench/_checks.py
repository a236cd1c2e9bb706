"""Argument checks shared by the module's functions: what may reach the
library (or the wrench command) whole, and the message when it may not."""

from __future__ import annotations

import os


def name(value: object, what: str, function: str) -> bytes:
    """A category or feature as the library wants it: UTF-8 bytes, no NUL."""
    if not isinstance(value, str):
        raise TypeError(
            f"wrench.{function}(): {what} must be a str, not {type(value).__name__}"
            + (" (decode it first)" if isinstance(value, (bytes, bytearray)) else "")
        )
    if "\0" in value:
        raise ValueError(f"wrench.{function}(): {what} {value!r} contains a NUL character")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"wrench.{function}(): {what} {value!r} cannot be encoded as UTF-8 ({error.reason})"
        ) from None


def path(value: object, function: str, what: str = "the path") -> bytes:
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(
            f"wrench.{function}(): {what} must be a str, bytes, os.PathLike or None, "
            f"not {type(value).__name__}"
        )
    raw = os.fsencode(value)
    if b"\0" in raw:
        raise ValueError(f"wrench.{function}(): {what} {value!r} contains a NUL character")
    return raw


def unsigned(value: object, bits: int, what: str, function: str) -> int:
    # bool is an int subclass, but set_seed(True) is certainly a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"wrench.{function}(): {what} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << bits:
        raise ValueError(
            f"wrench.{function}(): {what} {value} is out of range; expected 0 to {(1 << bits) - 1}"
        )
    return value
