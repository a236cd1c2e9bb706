#!/usr/bin/env python3
"""A charm hook's core as a program: push a configuration file to a service.

The push can fail with a connection error, as a Pebble push does while the
workload restarts, so the hook retries it a few times with a short pause.
If every attempt fails it exits 1: Juju runs a failed hook again later,
and so does examples/push_with_retries.sh. The failure point
"my-charm/push-fails" stands for the connection error; on a machine
without a trigger file (or without libwrench) it never fires.

Usage: push_config.py SERVICE_DIR [--attempts N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import wrench

CONFIG = "listen = 0.0.0.0:8080\nworkers = 4\n"

log = logging.getLogger("my-charm")


def push(service: Path, name: str, text: str) -> None:
    """Stands for container.push(): the service here is a directory."""
    wrench.point(
        "my-charm",
        "push-fails",
        raises=ConnectionError("cannot connect to the service: connection refused"),
    )
    staged = service / (name + ".new")
    staged.write_text(text)
    staged.replace(service / name)


def main() -> int:
    parser = argparse.ArgumentParser(description="Push a configuration file, with retries.")
    parser.add_argument("service", type=Path, help="the service's directory")
    parser.add_argument("--attempts", type=int, default=5, help="attempts before giving up")
    args = parser.parse_args()
    # The library's messages arrive through the logger "wrench".
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="  %(name)s: %(message)s")

    for attempt in range(1, args.attempts + 1):
        try:
            push(args.service, "app.conf", CONFIG)
        except ConnectionError as error:
            log.info("attempt %d: push failed: %s", attempt, error)
            if attempt < args.attempts:
                time.sleep(0.1 * attempt)
            continue
        log.info("attempt %d: pushed app.conf", attempt)
        return 0
    log.info("giving up after %d attempts: the hook fails and will be run again", args.attempts)
    return 1


if __name__ == "__main__":
    sys.exit(main())
