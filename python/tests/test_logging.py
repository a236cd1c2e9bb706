"""The logging bridge: the library's messages reach the logger "wrench"."""

from __future__ import annotations

import logging

from conftest import run_python, write_trigger

import wrench


def test_a_fired_line_is_a_warning_of_logger_wrench(wrench_dir, caplog) -> None:
    wrench_dir.write("my-charm", "push-fails\n")
    with caplog.at_level(logging.DEBUG, logger="wrench"):
        assert wrench.is_active("my-charm", "push-fails")
    fired = [r for r in caplog.records if "my-charm/push-fails fired" in r.getMessage()]
    assert len(fired) == 1
    assert fired[0].name == "wrench"
    assert fired[0].levelno == logging.WARNING
    # The message as the library wrote it, without the stderr prefix.
    assert not fired[0].getMessage().startswith("wrench:")


# Prints each record of logger "wrench" as LEVEL|message, on stdout.
PRINT_RECORDS = """
    import logging, sys
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)s|%(levelname)s|%(message)s"))
    logging.getLogger("wrench").addHandler(handler)
    logging.getLogger("wrench").setLevel(logging.DEBUG)
"""


def test_every_level_is_mapped(scratch) -> None:
    write_trigger(scratch, "my-charm", "push-fails\n")
    result = run_python(
        PRINT_RECORDS
        + f"""
    import wrench
    wrench.set_dir({str(scratch)!r})
    wrench.is_active("my-charm", "push-fails")   # INFO loaded, WARN fired
    wrench.is_active("a/b", "x")                 # ERROR: first bad argument
    wrench.is_active("a/b", "x")                 # DEBUG: the repeats
    """,
        WRENCH_LOG="debug",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("wrench|INFO|loaded ") for line in lines), lines
    assert any(line.startswith("wrench|WARNING|my-charm/push-fails fired") for line in lines)
    assert any(line.startswith("wrench|ERROR|wrench_is_active(\"a/b\"") for line in lines)
    assert any(line.startswith("wrench|DEBUG|wrench_is_active(\"a/b\"") for line in lines)
    # Nothing went to stderr: the bridge took every message.
    assert "wrench:" not in result.stderr


def test_wrench_log_still_filters_at_the_source(scratch) -> None:
    write_trigger(scratch, "my-charm", "push-fails\n")
    result = run_python(
        PRINT_RECORDS
        + f"""
    import wrench
    wrench.set_dir({str(scratch)!r})
    print(wrench.is_active("my-charm", "push-fails"))
    """,
        WRENCH_LOG="error",
    )
    assert result.stdout.splitlines() == ["True"]


def test_a_logging_failure_sends_the_message_to_stderr(scratch) -> None:
    write_trigger(scratch, "my-charm", "push-fails\n")
    result = run_python(
        f"""
    import logging, wrench
    class Broken(logging.Filter):
        def filter(self, record):
            raise RuntimeError("a broken filter")
    logging.getLogger("wrench").addFilter(Broken())
    wrench.set_dir({str(scratch)!r})
    print(wrench.is_active("my-charm", "push-fails"))
    """,
        WRENCH_LOG="warn",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert "wrench: warning: my-charm/push-fails fired" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_handlers_warnings_still_reach_stderr(scratch) -> None:
    # No logging configuration at all: Python's last-resort handler prints it.
    write_trigger(scratch, "my-charm", "push-fails\n")
    result = run_python(
        f"""
    import wrench
    wrench.set_dir({str(scratch)!r})
    wrench.is_active("my-charm", "push-fails")
    """,
        WRENCH_LOG="warn",
    )
    assert "my-charm/push-fails fired" in result.stderr
