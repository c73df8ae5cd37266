"""Real collectd for the tests: the app's rendered server and node configs run as two
collectd processes on loopback (docs/architecture.md §8), each with its own BaseDir and PIDFile.

``collectd_pair(base, server_conf, node_conf, auth_file)`` starts the server first, then
the node; it yields the processes and stops them (their logs are in ``base``). The test
adds only its own places to the rendered text: BaseDir, PIDFile, the AuthFile path, and
optionally a shorter Interval so that it takes seconds, not a minute.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

RENDERED_AUTH_FILE = 'AuthFile "/etc/collectd.passwd"'
RENDERED_INTERVAL = "Interval 10"


@contextmanager
def collectd_pair(
    base: Path,
    server_conf: str,
    node_conf: str,
    auth_file: Path,
    interval: int | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The collectd server (receiving, writing RRD files) and a node (sending, signed)."""
    processes: list[tuple[subprocess.Popen[bytes], IO[str]]] = []
    try:
        for name, text in (("server", server_conf), ("node", node_conf)):
            directory = base / f"collectd-{name}"
            directory.mkdir(exist_ok=True)
            assert RENDERED_INTERVAL in text
            text = text.replace(RENDERED_AUTH_FILE, f'AuthFile "{auth_file}"')
            if interval is not None:
                text = text.replace(RENDERED_INTERVAL, f"Interval {interval}")
            conf = base / f"collectd-{name}.conf"
            conf.write_text(f'BaseDir "{directory}"\nPIDFile "{directory}/collectd.pid"\n' + text)
            log = (directory / "log").open("w")
            process = subprocess.Popen(["collectd", "-f", "-C", str(conf)], stdout=log, stderr=log)
            processes.append((process, log))
        yield [p for p, _ in processes]
    finally:
        for process, log in processes:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def wait_until(
    done: Callable[[], bool],
    processes: list[subprocess.Popen[bytes]],
    timeout: float,
    what: str,
) -> None:
    """Poll ``done`` until it holds; fail if a collectd exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not done():
        for process in processes:
            assert process.poll() is None, "a collectd exited early"
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.5)
