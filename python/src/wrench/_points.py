"""Running the wrench command: the one module that knows it.

The library records every failure point a process reaches in files of the
trigger directory (wrench(5)), and the `wrench` command reads them with the
library's own trust rules. wrench.points() runs the command rather than
read those files a second way, as the module calls the library rather than
parse trigger files: one reader, one set of rules.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence, Union

# Names, by absolute path, the wrench command to run instead of the first
# one in PATH: tests point it at the command built in the same run.
COMMAND_ENV = "WRENCH_COMMAND"

# Reading the records takes milliseconds; a command that hangs (a trigger
# directory on a dead NFS server) must not hang the caller with it.
TIMEOUT = 60.0

logger = logging.getLogger("wrench")


class CommandError(RuntimeError):
    """The wrench command failed, or printed something that is not its report."""


def command() -> str:
    """The wrench command to run: WRENCH_COMMAND's, else `wrench` in PATH.

    A relative WRENCH_COMMAND is refused, as a relative WRENCH_LIBRARY is:
    whoever can write in the current directory would choose what runs.
    python -E ignores WRENCH_COMMAND, as it ignores WRENCH_LIBRARY. Raises
    FileNotFoundError, saying how to get the command, when there is none.
    """
    named = None if sys.flags.ignore_environment else os.environ.get(COMMAND_ENV)
    if named:
        if not os.path.isabs(named):
            raise FileNotFoundError(
                f"{COMMAND_ENV} is {named!r}, a relative path, so it is not run; set "
                f"{COMMAND_ENV} to the wrench command's absolute path, or unset it to "
                "run `wrench` from PATH"
            )
        if not (os.path.isfile(named) and os.access(named, os.X_OK)):
            raise FileNotFoundError(
                f"{COMMAND_ENV} is {named!r}, which is not an executable file; set it "
                "to the wrench command's absolute path, or unset it to run `wrench` from PATH"
            )
        return named
    found = shutil.which("wrench")
    if found is None:
        raise FileNotFoundError(
            "the wrench command was not found in PATH; install the Debian package "
            f"`wrench`, or set {COMMAND_ENV} to the command's absolute path"
        )
    return found


def _messages(stderr: bytes) -> List[str]:
    """The command's lines on stderr, without their "wrench: " prefix."""
    lines = stderr.decode("utf-8", errors="replace").splitlines()
    prefix = "wrench: "
    return [line[len(prefix) :] if line.startswith(prefix) else line for line in lines if line]


def _shown(argv: Sequence[Union[str, bytes]]) -> str:
    return shlex.join(os.fsdecode(arg) for arg in argv)


def run_points(
    directory: Optional[bytes], category: Optional[bytes], binary: Optional[bytes]
) -> List[Dict[str, Any]]:
    """Runs `wrench --json points` and answers its list of points.

    Exit status 1 (a file of records refused, the others still read)
    answers the list and logs the command's messages as WARNINGs; any other
    failure raises CommandError with them.
    """
    argv: List[Union[str, bytes]] = [command()]
    if directory is not None:
        argv += [b"--dir", directory]
    argv += [b"--json", b"points"]
    if binary is not None:
        argv += [b"--binary", binary]
    if category is not None:
        # After "--", a category that starts with "-" is not an option.
        argv += [b"--", category]
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise CommandError(f"`{_shown(argv)}` did not finish within {TIMEOUT:g} s") from None
    messages = _messages(done.stderr)
    said = "; ".join(messages) or "it said nothing on stderr"
    if done.returncode < 0:
        raise CommandError(f"`{_shown(argv)}` was killed by signal {-done.returncode}: {said}")
    if done.returncode not in (0, 1):
        raise CommandError(f"`{_shown(argv)}` failed with exit status {done.returncode}: {said}")
    try:
        report = json.loads(done.stdout)
    except ValueError as error:
        raise CommandError(
            f"`{_shown(argv)}` printed something that is not JSON ({error})"
        ) from None
    if not isinstance(report, dict) or not isinstance(report.get("points"), list):
        raise CommandError(f"`{_shown(argv)}` printed JSON without a list of points")
    # Status 0 may still come with a note (a directory that does not
    # exist yet): worth a DEBUG line, not a warning.
    level = logging.WARNING if done.returncode == 1 else logging.DEBUG
    for message in messages:
        logger.log(level, "%s", message)
    return report["points"]
