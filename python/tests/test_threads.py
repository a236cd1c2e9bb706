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
        self.fired = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "my-charm/push-fails fired" in record.getMessage():
            self.fired += 1  # handle() holds the handler's lock


def test_threads_share_the_counters_and_every_message_arrives(wrench_dir) -> None:
    wrench_dir.write("my-charm", "push-fails first=2 every=3\n")
    handler = Counting()
    logger = logging.getLogger("wrench")
    logger.addHandler(handler)
    results: list[int] = []
    start = threading.Barrier(THREADS)

    def caller() -> None:
        start.wait()
        fired = sum(wrench.is_active("my-charm", "push-fails") for _ in range(CALLS))
        results.append(fired)

    threads = [threading.Thread(target=caller) for _ in range(THREADS)]
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
    assert handler.fired == sum(results)


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
