"""How long the node agent waits on a busy server's ``Retry-After``."""

from __future__ import annotations

import email.utils

from fedoracloud.node_agent import BUSY_WAIT, BUSY_WAIT_MAX, retry_after


def test_seconds_an_http_date_or_the_default() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("0") == 0.0
    assert retry_after("86400") == BUSY_WAIT_MAX  # a server's whim never parks a node a day
    now = 1_700_000_000.0
    in_a_minute = email.utils.formatdate(now + 60, usegmt=True)
    assert retry_after(in_a_minute, now=now) == 60.0
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert retry_after(past, now=now) == 0.0
    for missing in (None, "", "soon", "-5", "1.5"):
        assert retry_after(missing) == BUSY_WAIT
