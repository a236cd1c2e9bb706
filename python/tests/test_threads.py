"""Threads calling at once: one set of counters, no message lost."""

from __future__ import annotations

import logging
import threading

import wrench

THREADS = 8
CALLS = 300


class Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.fired: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " fired (line " in message:
            self.fired.append(message)  # handle() holds the handler's lock


def test_threads_share_the_counters_and_every_message_arrives(wrench_dir) -> None:
    # One counted line for all the threads, and a line per thread and call:
    # the first fire of each line is logged, so every one of those is a
    # message that must arrive (later fires of one line are summed).
    lines = [f"own-{t}-{i}" for t in range(THREADS) for i in range(CALLS)]
    wrench_dir.write("my-charm", "push-fails first=2 every=3\n" + "\n".join(lines) + "\n")
    handler = Counting()
    logger = logging.getLogger("wrench")
    logger.addHandler(handler)
    results: list[int] = []
    own: list[int] = []
    start = threading.Barrier(THREADS)

    def caller(t: int) -> None:
        start.wait()
        fired = 0
        mine = 0
        for i in range(CALLS):
            fired += wrench.is_active("my-charm", "push-fails")
            mine += wrench.is_active("my-charm", f"own-{t}-{i}")
        results.append(fired)
        own.append(mine)

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        logger.removeHandler(handler)
    assert not any(thread.is_alive() for thread in threads)
    # Two calls out of every three, counted across all the threads.
    assert sum(results) == THREADS * CALLS * 2 // 3
    assert sum(own) == THREADS * CALLS
    # Every line's first fire, each message once.
    logged = [m for m in handler.fired if m.startswith("my-charm/own-")]
    assert len(logged) == THREADS * CALLS
    assert len(set(logged)) == len(logged)
    assert any(m.startswith("my-charm/push-fails fired") for m in handler.fired)


def test_control_calls_race_queries_safely(wrench_dir, scratch) -> None:
    wrench_dir.write("my-charm", "push-fails\n")
    stop = threading.Event()
    errors: list[BaseException] = []

    def query() -> None:
        try:
            while not stop.is_set():
                wrench.is_active("my-charm", "push-fails")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=query) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(200):
        wrench.set_dir(scratch if i % 2 else wrench_dir.path)
        wrench.set_seed(i)
        with wrench.disabled():
            pass
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    wrench.set_seed(None)
    wrench.set_dir(wrench_dir.path)
    assert errors == []
    assert wrench.is_active("my-charm", "push-fails")
