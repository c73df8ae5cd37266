"""Schemathesis against the served app: waitress on loopback, on its own PostgreSQL database
(``--db=postgresql``; skipped on SQLite), called with API tokens made by the token service.

- The super admin's token runs every operation of ``/api/v1/openapi.json`` with data that
  fits the document and with data that does not: no 5xx, every answer (status, content
  type, body) inside the document, and data outside it refused.
- A plain member's token (a ``monitor`` grant on one VM pool: may look, may change
  nothing) runs every unsafe operation: no 2xx but on her own tokens, and no row of the
  database changes (besides her token's ``last_used_at`` and the enrollment attempt count).

Bounded: ``FEDORACLOUD_SCHEMATHESIS_EXAMPLES`` examples per operation and mode (default 5),
derandomized so that a run repeats the last one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
import sqlalchemy as sa
import transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from waitress.server import create_server

from fedoracloud import main
from fedoracloud.models import (
    ApiToken,
    PoolKind,
    RoleGrant,
    User,
    get_engine,
    get_session_factory,
    get_tm_session,
)
from fedoracloud.models.meta import Base
from fedoracloud.pki import CaSettings, CertificateAuthority
from fedoracloud.services.context import ServiceContext
from fedoracloud.services.pools import PoolService
from fedoracloud.services.tokens import TokenService
from fedoracloud.settings import Settings

from .. import factories

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FEDORACLOUD_SCHEMATHESIS_EXAMPLES", "5"))
#: the tokens' ids, far from the small ids the fuzzer tries first (revoking them would end
#: the run's authentication)
ADMIN_TOKEN_ID = 987_654_321
MEMBER_TOKEN_ID = 987_654_322
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
#: columns a read may touch (who was seen when), the table public enrollment counts in and
#: the one failed authentications (her made-up enrollment tokens) are counted in
VOLATILE_COLUMNS = {"last_used_at", "last_seen_at", "memberships_checked_at", "updated_at"}
VOLATILE_TABLES = {"enroll_attempts", "auth_failures"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _seed(url: str) -> dict[str, Any]:
    """The pools, a host and VMs, the two people, a grant and the two tokens; committed."""
    engine = get_engine({"sqlalchemy.url": url})
    manager = transaction.TransactionManager(explicit=True)
    with manager:
        session = get_tm_session(get_session_factory(engine), manager)
        factories.bind(session)
        pools = PoolService(ServiceContext.for_session(session))
        made = dict(pools.ensure_builtin())
        fedora = pools.create("fedora", PoolKind.HARDWARE, made["hardware"])
        fedora_vms = pools.create("fedora-vms", PoolKind.VM, fedora)
        redhat = pools.create("redhat", PoolKind.HARDWARE, made["hardware"])
        redhat_vms = pools.create("redhat-vms", PoolKind.VM, redhat)
        for pool in (fedora, redhat):
            factories.HostFactory(pool=pool)
        for pool in (fedora_vms, redhat_vms):
            factories.VmFactory(pool=pool)
            factories.VmFactory(pool=pool, state="running")
        admin = User(username="admin", display_name="Admin")
        alice = User(username="alice", display_name="Alice")
        session.add_all([admin, alice])
        session.flush()
        session.add(RoleGrant(user_id=alice.id, pool_id=fedora_vms.id, role="monitor"))
        tokens = TokenService(ServiceContext.for_session(session))
        secrets = {}
        for user, token_id in ((admin, ADMIN_TOKEN_ID), (alice, MEMBER_TOKEN_ID)):
            created = tokens.create(user, "schemathesis")
            session.flush()
            session.execute(
                sa.update(ApiToken).where(ApiToken.id == created.token.id).values(id=token_id)
            )
            secrets[user.username] = created.secret
    engine.dispose()
    return secrets


def fingerprint(engine: sa.Engine) -> dict[str, str]:
    """A hash of every table's rows (but the columns that only say who was seen when)."""
    prints = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in VOLATILE_TABLES:
                continue
            columns = [c for c in table.columns if c.name not in VOLATILE_COLUMNS]
            rows = conn.execute(sa.select(*columns).order_by(*table.primary_key.columns)).all()
            digest = hashlib.sha256(json.dumps([list(r) for r in rows], default=str).encode())
            prints[table.name] = f"{len(rows)}:{digest.hexdigest()[:16]}"
    return prints


@pytest.fixture
def served(
    app_settings: dict[str, Any], migrated_database: str, tmp_path: Any, db_kind: str
) -> Iterator[dict[str, Any]]:
    """The app on its own database and instance directory (with a CA), behind waitress on
    a free loopback port."""
    if db_kind != "postgresql":
        pytest.skip("the schemathesis run is PostgreSQL-backed: make test-postgresql")
    settings = {
        **app_settings,
        "sqlalchemy.url": migrated_database,
        "fedoracloud.instance_dir": str(tmp_path),
    }
    CertificateAuthority(CaSettings.from_settings(Settings.from_dict(settings))).init()
    tokens = _seed(migrated_database)
    server = create_server(main({}, **settings), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    engine = sa.create_engine(migrated_database)
    try:
        yield {
            "url": f"http://127.0.0.1:{server.effective_port}",
            "tokens": tokens,
            "engine": engine,
        }
    finally:
        server.close()
        thread.join(timeout=10)
        engine.dispose()


def _operations(base_url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    schema.config.base_url = base_url
    return [result.ok() for result in schema.get_all_operations()]


def _run(operation: Any, mode: Any, check: Any) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        check(case)

    run()


def test_the_admin_gets_answers_inside_the_document(served):
    session = requests.Session()
    headers = {"Authorization": f"Bearer {served['tokens']['admin']}"}
    failures: list[str] = []
    for operation in _operations(served["url"]):
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            checks = CHECKS + ([negative_data_rejection] if mode.is_negative else [])

            def check(case: Any, checks: list[Any] = checks) -> None:
                response = case.call(session=session, headers=headers, timeout=30)
                case.validate_response(response, checks=checks, headers=headers)

            try:
                _run(operation, mode, check)
            except Unsatisfiable:
                pass  # nothing in the operation can be made wrong (no parameter, no body)
            except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)


def test_a_plain_member_changes_nothing(served):
    session = requests.Session()
    headers = {"Authorization": f"Bearer {served['tokens']['alice']}"}
    # her first call reads her memberships from the login backend (a legitimate write)
    assert session.get(f"{served['url']}/api/v1/pools", headers=headers).status_code == 200
    before = fingerprint(served["engine"])
    # someone else's token is a 404 to her, whatever she asks of it
    admin_token = f"{served['url']}/api/v1/tokens/{ADMIN_TOKEN_ID}"
    assert session.get(admin_token, headers=headers).status_code == 404
    assert session.delete(admin_token, headers=headers).status_code == 404
    failures: list[str] = []
    for operation in _operations(served["url"]):
        if operation.method.upper() not in UNSAFE:
            continue
        own_tokens = operation.path.startswith("/api/v1/tokens")

        def check(case: Any, own_tokens: bool = own_tokens) -> None:
            response = case.call(session=session, headers=headers, timeout=30)
            case.validate_response(response, checks=CHECKS, headers=headers)
            assert own_tokens or response.status_code >= 400, (
                f"{case.method} {case.formatted_path} answered {response.status_code} "
                f"to a member who may change nothing: {response.text[:300]}"
            )

        try:
            _run(operation, schemathesis.GenerationMode.POSITIVE, check)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
    after = fingerprint(served["engine"])
    changed = {t: (before[t], after.get(t)) for t in before if before[t] != after.get(t)}
    assert not changed, f"tables the member changed: {changed}"
