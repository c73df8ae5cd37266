"""The ``fedoracloud`` command for the tests, run in the test process.

``fedoracloud(*args)`` calls ``fedoracloud.cli.main(args)`` with its standard streams
captured (and ``stdin`` fed to it) and answers what ``subprocess.run`` would: the exit
status, stdout and stderr.  A new Python process costs about a second of imports; the
commands a test runs to set up or check its data do not need one.  What only a real
process shows (``python -m fedoracloud.cli``, the console script, a server that keeps
running, a command another program runs) stays a subprocess in its own tests.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading
from collections.abc import Iterator

from sqlalchemy import Engine, event

from fedoracloud.cli import main


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    previous = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = previous


@contextlib.contextmanager
def _engines_used() -> Iterator[set[Engine]]:
    """The engines that connect in this thread inside the block."""
    used: set[Engine] = set()
    me = threading.get_ident()

    def seen(connection: object) -> None:
        if threading.get_ident() == me:
            used.add(connection.engine)  # type: ignore[attr-defined]

    event.listen(Engine, "engine_connect", seen)
    try:
        yield used
    finally:
        event.remove(Engine, "engine_connect", seen)


def fedoracloud(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``fedoracloud ARGS…`` in this process; its exit status and output."""
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        _stdin(stdin),
        _engines_used() as engines,
    ):
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's --help and usage errors
            if exc.code is None or isinstance(exc.code, int):
                status = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                status = 1
    for engine in engines:  # close the command's connections, as the end of its process would
        engine.dispose()
    return subprocess.CompletedProcess(
        ["fedoracloud", *args], status, out.getvalue(), err.getvalue()
    )
