"""Test fixtures: one database per run (SQLite or PostgreSQL), a savepoint per test,
the real WSGI app with its real security policy, and factories.

``pytest --db=postgresql`` runs the same suite on the running PostgreSQL (a scratch
database made for the run and dropped after it).  Under pytest-xdist (``-n``) each worker
has a database of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
import webtest
from passlib.apache import HtpasswdFile
from pyramid import testing
from pyramid.scripting import prepare

from fedoracloud import main
from fedoracloud.models import get_engine, get_session_factory, get_tm_session
from fedoracloud.services.context import ServiceContext

from . import factories
from .databases import PG_BASE_URL, ROOT, alembic_config, scratch_database  # noqa: F401
from .libvirtd import libvirt_domains, migration_pair, real_libvirt, tcg_guest  # noqa: F401

#: local users of the test password file (apr1, so logins stay fast)
PASSWORDS = {
    "admin": "admin-password",
    "alice": "alice-password",
    "bob": "bob-password",
    "carol": "carol-password",
    "eve": "eve-password",
    "olga": "olga-password",
}
#: the groups file: admin is listed in fedoracloud.admins; olga administers the access
#: group; alice and bob are approved members; carol's membership is not approved yet; eve
#: is an outsider
GROUPS = "sysadmin-cloud: @olga admin alice bob ~carol\nfedora-packagers: alice eve\n"


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="database the suite runs on",
    )
    parser.addoption(
        "--only-db-tests",
        action="store_true",
        help="skip the tests that do not depend on --db (make test runs them in its SQLite pass)",
    )


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """With --only-db-tests, deselect each test whose fixtures never reach ``db_kind``: it
    would run the same on either database (libvirt, Puppet, the login servers …)."""
    if not config.getoption("--only-db-tests"):
        return
    same = [item for item in items if "db_kind" not in getattr(item, "fixturenames", ())]
    if same:
        config.hook.pytest_deselected(items=same)
        items[:] = [item for item in items if "db_kind" in getattr(item, "fixturenames", ())]


@pytest.fixture(scope="session")
def db_kind(request: Any) -> str:
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def database_url(db_kind: str, tmp_path_factory: Any) -> Iterator[str]:
    """This run's database (this worker's, under pytest-xdist), at Alembic's head: a copy
    of the schema migrated once into a template."""
    directory = str(tmp_path_factory.mktemp("db"))
    with scratch_database(db_kind, directory, "fc_test", migrated=True) as url:
        yield url


@pytest.fixture
def empty_database(db_kind: str, tmp_path: Any) -> Iterator[str]:
    """A brand-new empty database of the kind under test, for tests that commit."""
    with scratch_database(db_kind, str(tmp_path)) as url:
        yield url


@pytest.fixture
def migrated_database(db_kind: str, tmp_path: Any) -> Iterator[str]:
    """A brand-new database of the kind under test at Alembic's head, for tests that commit
    (what ``fedoracloud initdb`` makes of an empty one)."""
    with scratch_database(db_kind, str(tmp_path), migrated=True) as url:
        yield url


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory: Any) -> str:
    return str(tmp_path_factory.mktemp("instance"))


@pytest.fixture(scope="session")
def app_settings(database_url: str, instance_dir: str) -> dict[str, Any]:
    htpasswd = os.path.join(instance_dir, "htpasswd")
    ht = HtpasswdFile(htpasswd, new=True, default_scheme="apr_md5_crypt")
    for username, password in PASSWORDS.items():
        ht.set_password(username, password)
    ht.save()
    groups = os.path.join(instance_dir, "groups")
    with open(groups, "w") as out:
        out.write(GROUPS)
    return {
        "sqlalchemy.url": database_url,
        "fedoracloud.session_secret": "test-secret-" + "x" * 20,
        "fedoracloud.secure_cookies": "false",
        "fedoracloud.auth.backend": "htpasswd",
        "fedoracloud.htpasswd.file": htpasswd,
        "fedoracloud.htpasswd.groups_file": groups,
        "fedoracloud.admins": "admin",
        "fedoracloud.instance_dir": instance_dir,
        "fedoracloud.page_size": "10",
        # collectd's RRD files the graphs read (tests/rrd.py writes them in its layout)
        "fedoracloud.stats.rrd_dir": os.path.join(instance_dir, "rrd"),
        # an API response outside fedoracloud/openapi/ fails the test that made it
        "fedoracloud.openapi.validate_responses": "true",
    }


@pytest.fixture(scope="session")
def dbengine(app_settings: dict[str, Any]) -> Iterator[sa.Engine]:
    """The engine, on a database migrated to head by Alembic (as production is)."""
    engine = get_engine(app_settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def app(app_settings: dict[str, Any], dbengine: sa.Engine) -> Any:
    return main({}, **app_settings)


@pytest.fixture
def tm() -> Iterator[Any]:
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    manager.doom()
    yield manager
    manager.abort()


@pytest.fixture
def dbsession(app: Any, tm: Any, dbengine: sa.Engine) -> Iterator[Any]:
    """A session inside a transaction that is rolled back after the test."""
    connection = dbengine.connect()
    outer = connection.begin()
    session_factory = get_session_factory(connection)  # type: ignore[arg-type]
    session_factory.configure(join_transaction_mode="create_savepoint")
    session = get_tm_session(session_factory, tm)
    factories.bind(session)
    yield session
    session.close()
    outer.rollback()
    connection.close()


@pytest.fixture
def testapp(app: Any, tm: Any, dbsession: Any) -> webtest.TestApp:
    """WebTest over the real WSGI app, sharing the test's session and transaction."""
    app.registry.pop("directory_synced_at", None)  # a process cache; each test rolls back
    return webtest.TestApp(
        app,
        extra_environ={
            "HTTP_HOST": "example.com",
            "tm.active": True,
            "tm.manager": tm,
            "app.dbsession": dbsession,
        },
    )


@pytest.fixture
def app_request(app: Any, tm: Any, dbsession: Any) -> Iterator[Any]:
    """A real request built by the app (with its registry, services and policy)."""
    with prepare(registry=app.registry) as env:
        request = env["request"]
        request.host = "example.com"
        request.dbsession = dbsession
        request.tm = tm
        yield request


@pytest.fixture
def dummy_request(tm: Any, dbsession: Any) -> Any:
    request = testing.DummyRequest()
    request.host = "example.com"
    request.dbsession = dbsession
    request.tm = tm
    return request


@pytest.fixture
def tree(dbsession: Any) -> dict[str, Any]:
    """The built-in pools plus a small tree: fedora (with VM pool fedora-vms) and redhat."""
    from fedoracloud.models import PoolKind
    from fedoracloud.services.pools import PoolService

    pools = PoolService(ServiceContext.for_session(dbsession))
    made = dict(pools.ensure_builtin())
    made["fedora"] = pools.create("fedora", PoolKind.HARDWARE, made["hardware"])
    made["fedora-vms"] = pools.create("fedora-vms", PoolKind.VM, made["fedora"])
    made["redhat"] = pools.create("redhat", PoolKind.HARDWARE, made["hardware"])
    made["redhat-vms"] = pools.create("redhat-vms", PoolKind.VM, made["redhat"])
    return made


def login(testapp: webtest.TestApp, username: str) -> webtest.TestApp:
    """Log in through the real login form."""
    form = testapp.get("/login").forms[0]
    form["username"] = username
    form["password"] = PASSWORDS[username]
    response = form.submit()
    assert response.status_int == 303, response.text
    return testapp


def csrf_token(testapp: webtest.TestApp) -> str:
    """The session's CSRF token, read from a page's form."""
    page = testapp.get("/pools")
    return page.html.find("input", {"name": "csrf_token"})["value"]


@pytest.fixture
def admin_app(testapp: webtest.TestApp, tree: dict[str, Any]) -> webtest.TestApp:
    return login(testapp, "admin")


@pytest.fixture
def alice_app(testapp: webtest.TestApp, tree: dict[str, Any]) -> webtest.TestApp:
    return login(testapp, "alice")
