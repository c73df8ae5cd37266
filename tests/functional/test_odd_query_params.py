"""Every list page and every list API asked with odd query parameters answers sensibly:
the list (sorted and filtered as well as it can be), or a clear 4xx message; never a 500.

The pages are found in the app's own route table (every GET route without a placeholder),
so a list added later is swept too.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyramid.interfaces import IRoutesMapper

from ..factories import HostFactory, VmFactory

#: routes that are not lists (forms, login flows, feeds for nodes)
NOT_LISTS = {
    "login",
    "logout",
    "oidc_callback",
    "home",
    "access",
    "api_ca_pem",
    "api_ca_crl",
    "api_enroll",
    "openapi",
    "api_openapi",
}

#: the odd values, by query parameter
ODD = [
    {"page": "-1"},
    {"page": "0"},
    {"page": "abc"},
    {"page": "99999999999999999999"},
    {"page": "1.5"},
    {"sort": "nonsense"},
    {"sort": "-"},
    {"sort": "--name"},
    {"sort": "name;drop table pools"},
    {"q": "%"},
    {"q": "_"},
    {"q": "%_\\"},
    {"q": "x" * 10_000},
    {"state": "nonsense"},
    {"state": "%"},
    {"kind": "%_"},
    {"user": "%"},
    {"action": "_" * 500},
    {"target_type": "%"},
    {"from": "yesterday"},
    {"to": "2026-02-31"},
    {"pool": "abc"},
    {"pool": "-1"},
    {"pool": "999999999"},
    {"target": "abc"},
    {"mine": "maybe"},
    {"per_page": "100000"},
    {"limit": "-5"},
    {"offset": "abc"},
    {"\x00": "\x00"},
    {"page": ["1", "2"]},
]


def list_routes(app: Any) -> list[tuple[str, str]]:
    mapper = app.registry.getUtility(IRoutesMapper)
    found = []
    for route in mapper.get_routes():
        if (
            "{" in route.pattern
            or "*" in route.pattern
            or not route.pattern.startswith("/")
            or route.name in NOT_LISTS
            or route.name.startswith("puppet")
        ):
            continue
        if route.pattern.endswith((".json", ".yaml", ".pem", ".crl")):
            continue
        found.append((route.name, route.pattern))
    return sorted(found)


def query_string(params: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    return urlencode(params, doseq=True)


@pytest.fixture
def some_rows(tree: dict[str, Any]) -> None:
    for n in range(3):
        host = HostFactory(hostname=f"odd{n}.example.org", pool=tree["fedora"])
        VmFactory(name=f"odd-vm{n}", pool=tree["fedora-vms"], host=host)


@pytest.mark.parametrize("who", ["admin", "alice"])
def test_list_pages_answer_odd_query_parameters_without_a_server_error(
    testapp: Any, app: Any, tree: dict[str, Any], some_rows: None, who: str
) -> None:
    from ..conftest import login

    login(testapp, who)
    routes = list_routes(app)
    assert {"hosts", "vms", "tasks", "audit", "tokens", "pools"} <= {n for n, _ in routes}
    failures = []
    for name, pattern in routes:
        for params in ODD:
            url = f"{pattern}?{query_string(params)}"
            response = testapp.get(url, expect_errors=True)
            status = response.status_int
            if status >= 500:
                failures.append(f"{url[:120]}: {status}")
                continue
            if status in (200, 303):
                continue
            if status in (400, 404, 422):
                if name.startswith("api_"):
                    ok = response.content_type == "application/json" and response.json.get(
                        "error", {}
                    ).get("message")
                else:
                    message = response.html.find(attrs={"data-testid": "error-message"})
                    ok = message is not None and len(message.get_text(strip=True)) > 10
                if not ok:
                    failures.append(f"{url[:120]}: {status} without a clear message")
                continue
            if status == 403 and who == "alice":  # an admin-only page refuses her plainly
                continue
            failures.append(f"{url[:120]}: unexpected {status}")
    assert not failures, f"{len(failures)} odd request(s) failed:\n" + "\n".join(failures)
