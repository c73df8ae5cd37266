"""What a Fedora contributor sees: the pools granted to them, never the ``redhat`` pool."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from fedoracloud.models import Pool

pytestmark = pytest.mark.browser


def test_contributor_does_not_see_the_redhat_pool(live_server: Any, jdoe_page: Any) -> None:
    page = jdoe_page
    page.goto(live_server.url("/pools"))
    tree = page.locator("main").inner_text()
    assert "fedora" in tree
    assert "redhat" not in tree
    with live_server.session() as session:
        redhat = session.scalars(select(Pool).where(Pool.name == "redhat")).one()
        redhat_id = redhat.id
    response = page.goto(live_server.url(f"/pools/{redhat_id}"))
    assert response is not None and response.status == 404
    page.goto(live_server.url("/vms"))
    assert "rhel-build01" not in page.locator("main").inner_text()
    assert "koji-builder01" in page.locator("main").inner_text()
