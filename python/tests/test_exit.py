"""The interpreter exits while threads are delivering messages."""

from __future__ import annotations

import pytest

from conftest import run_python, write_trigger

# Daemon threads keep calling a failure point that fires and logs, through
# the bridge, while the main thread returns and the interpreter tears
# down around them. The handler is slow on purpose, so that deliveries are
# in flight at exit: the main thread returns once one has begun, however
# long the threads take to get there on a loaded machine.
CHATTER_AT_EXIT = """
    import logging, sys, threading, time, wrench
    delivering = threading.Event()
    class Slow(logging.Handler):
        def emit(self, record):
            delivering.set()
            time.sleep(0.0005)
            sys.stdout.write(record.getMessage()[:0])
    logging.getLogger("wrench").addHandler(Slow())
    wrench.set_dir(DIR)
    started = threading.Barrier(THREADS + 1)
    def chatter():
        started.wait()
        while True:
            wrench.is_active("my-charm", "push-fails")
    for _ in range(THREADS):
        threading.Thread(target=chatter, daemon=True).start()
    started.wait()
    if not delivering.wait(30):
        sys.exit("no message was delivered in 30 s")
    print("main thread exits")
"""


@pytest.mark.parametrize("run", range(8))
def test_exit_with_threads_in_the_logger_neither_hangs_nor_crashes(scratch, run: int) -> None:
    write_trigger(scratch, "my-charm", "push-fails\n")
    code = CHATTER_AT_EXIT.replace("DIR", repr(str(scratch))).replace("THREADS", "6")
    result = run_python(code, timeout=60, WRENCH_LOG="warn")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "main thread exits"
    assert "Fatal Python error" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert "Traceback" not in result.stderr


def test_messages_logged_at_exit_after_the_bridge_go_to_stderr(scratch) -> None:
    # An atexit handler registered before wrench was imported runs after
    # the bridge is gone: its message reaches stderr, not nothing.
    write_trigger(scratch, "my-charm", "push-fails\n")
    result = run_python(
        f"""
    import atexit
    def last_words():
        import wrench
        print(wrench.is_active("my-charm", "push-fails"))
    atexit.register(last_words)
    import wrench
    wrench.set_dir({str(scratch)!r})
    """,
        WRENCH_LOG="warn",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert "wrench: warning: my-charm/push-fails fired" in result.stderr
