"""examples/push_with_retries.sh: three hook runs, retries, and the recovery."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPOSITORY


def runs(output: str) -> dict[int, list[str]]:
    """The lines of each hook run, by run number."""
    result: dict[int, list[str]] = {}
    current = 0
    for line in output.splitlines():
        started = re.match(r"== hook run (\d+) \(", line)
        if started:
            current = int(started.group(1))
            result[current] = []
        elif current:
            result[current].append(line.strip())
    return result


def failures(lines: list[str]) -> int:
    return sum("push failed: cannot connect" in line for line in lines)


def test_push_example_retries_and_recovers() -> None:
    result = subprocess.run(
        [str(REPOSITORY / "examples" / "push_with_retries.sh")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, **_library_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    by_run = runs(result.stdout)
    # Run 1: two failures, then the push, with either kind of counters.
    assert failures(by_run[1]) == 2
    assert "my-charm: attempt 3: pushed app.conf" in by_run[1]
    assert "== hook run 1 exited 0" in by_run[1]
    # Run 2 runs out of attempts.
    assert failures(by_run[2]) == 2
    assert "== hook run 2 exited 1" in by_run[2]
    # Run 3 recovers at once: the machine-wide counters carry the pattern
    # over from run 2, and its first call is the sixth, which does not fail.
    assert failures(by_run[3]) == 0
    assert "my-charm: attempt 1: pushed app.conf" in by_run[3]
    # The library announced the line's first fire in each run that failed,
    # through the logging bridge (later fires of a line are summed).
    for run in (1, 2):
        assert sum("wrench: my-charm/push-fails fired" in line for line in by_run[run]) == 1


def _library_env() -> dict[str, str]:
    return {name: os.environ[name] for name in ("WRENCH_LIBRARY",) if name in os.environ}
