"""A kill line in a child process: the process dies, after saying why."""

from __future__ import annotations

import signal

from conftest import run_python, write_trigger

CALL = """
    import logging, sys
    logging.basicConfig(stream=sys.stderr, format="%(name)s|%(levelname)s|%(message)s")
    import wrench
    wrench.set_dir(DIR)
    print("before", flush=True)
    print("answered", wrench.is_active("my-charm", "crash-before-commit"), flush=True)
"""


def test_kill_line_kills_the_child_after_logging_it(scratch) -> None:
    write_trigger(scratch, "my-charm", "crash-before-commit kill\n")
    result = run_python(CALL.replace("DIR", repr(str(scratch))), WRENCH_LOG="warn")
    assert result.returncode == -signal.SIGKILL
    assert result.stdout.splitlines() == ["before"]
    # The bridge delivered the message synchronously, before the signal.
    assert "wrench|WARNING|my-charm/crash-before-commit fired" in result.stderr
    assert "kill (SIGKILL)" in result.stderr


def test_kill_term_runs_a_python_handler_and_the_point_fails(scratch) -> None:
    write_trigger(scratch, "my-charm", "crash-before-commit kill=TERM\n")
    code = (
        "import signal\n"
        "signal.signal(signal.SIGTERM, lambda *_: print('SIGTERM handled', flush=True))\n"
        + __import__("textwrap").dedent(CALL).replace("DIR", repr(str(scratch)))
    )
    result = run_python(code, WRENCH_LOG="warn")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "before"
    assert "SIGTERM handled" in lines
    assert "answered True" in lines

