"""Browser tests: Playwright driving Debian's Chromium against the real app on loopback.

Needs: Debian's ``chromium`` (``scripts/install-system-packages test`` installs it) and the
PyPI ``playwright`` package (``pip install -e '.[test]'``; it ships its own driver, no
``playwright install``, no browser download). Run them with
``pytest tests/browser -m browser`` (add ``--db=postgresql`` for PostgreSQL).

Fixtures (use them from any ``tests/browser/test_*.py``; mark the tests
``@pytest.mark.browser``):

``live_server`` (session)
    A :class:`LiveServer`: the real WSGI app (``fedoracloud.main``) served by waitress on
    ``127.0.0.1:<free port>`` in a thread, on a database of its own of the run's kind
    (``--db=sqlite``: a file; ``--db=postgresql``: a scratch database dropped at the end),
    migrated by Alembic and loaded with the demo (:func:`fedoracloud.demo.load_demo`: the
    seed's pools ``redhat``, ``fedora``, ``infra``, ``default`` with their VM pools, eight
    fake hosts on libvirt's test driver, ``node01`` pending; the app's CA made).
    Requests commit, so a test sees what the server wrote and the server sees what a
    test commits through ``live_server.session()``. The embedded task worker and the VM
    event service run in the server's process, as in ``fedoracloud serve``, so VM actions
    really run. ``live_server.url("/vms")`` gives an absolute URL. The state is shared by
    every test of the run: make names unique (:func:`unique`) and don't rely on another
    test's leftovers.

People (htpasswd backend; :data:`PASSWORDS`):
    ``admin`` (super admin: administrator of ``sysadmin-cloud``), ``jdoe`` (member of
    ``sysadmin-cloud``, ``user`` role on the ``fedora`` pool only: never sees ``redhat``),
    ``newbie`` (not in ``sysadmin-cloud``; has no access request yet, so a test can make one).

``start_live_server(db_kind, base_dir, **extra_settings)``
    The context manager behind ``live_server``, for a test module that needs a server
    with other settings (e.g. a real libvirtd); yields a :class:`LiveServer`.

``browser`` (session)
    Headless Chromium (``/usr/bin/chromium``, ``--no-sandbox`` as root needs).

``new_page(username=None)`` (function)
    A factory: a page in a fresh browser context (own cookies), logged in as
    ``username`` when given. Contexts are closed after the test.

``login(page, live_server, username)``
    Log in through the real login form; waits until the app answered.

``admin_page``, ``jdoe_page``, ``newbie_page`` (function)
    A logged-in page for each demo person.

``live_server.errors()``
    What the server logged at WARNING and above; a failing test shows the part logged
    while it ran.

``axe_violations(page, impacts=("serious", "critical"))``
    Injects the vendored axe-core into the page, runs its WCAG 2.1 A and AA rules, and
    returns the violations of those impacts (dicts with ``id``, ``impact``, ``help``,
    ``nodes``).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
from passlib.apache import HtpasswdFile

from fedoracloud import main
from fedoracloud.demo import DEMO_GROUPS, load_demo
from fedoracloud.models import AccessRequest, get_tm_session
from fedoracloud.settings import Settings

from ..databases import scratch_database

CHROMIUM = "/usr/bin/chromium"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AXE = os.path.join(ROOT, "fedoracloud", "static", "vendor", "axe-core", "axe.min.js")

#: the demo's people with known passwords (apr1 hashes, so logins stay fast)
PASSWORDS = {
    "admin": "admin-browser-password",
    "jdoe": "jdoe-browser-password",
    "newbie": "newbie-browser-password",
}


def unique(prefix: str) -> str:
    """A name no other test of the run uses."""
    return f"{prefix}-{secrets.token_hex(3)}"


@dataclass
class LiveServer:
    """The app served on loopback, with its settings and a way to commit to its database."""

    base_url: str
    app: Any
    settings: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def errors(self) -> str:
        """What the server logged at WARNING and above so far."""
        with open(self.extras["log"], encoding="utf-8") as log:
            return log.read()

    @contextmanager
    def session(self) -> Iterator[Any]:
        """A session on the server's database, committed at the end (aborted on error)."""
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            yield get_tm_session(self.app.registry["dbsession_factory"], manager)


def _settings(database_url: str, base_dir: str) -> dict[str, Any]:
    htpasswd = os.path.join(base_dir, "htpasswd")
    ht = HtpasswdFile(htpasswd, new=True, default_scheme="apr_md5_crypt")
    for username, password in PASSWORDS.items():
        ht.set_password(username, password)
    ht.save()
    groups = os.path.join(base_dir, "groups")
    with open(groups, "w", encoding="utf-8") as out:
        out.write(DEMO_GROUPS)
    return {
        "sqlalchemy.url": database_url,
        "fedoracloud.session_secret": "browser-secret-" + "x" * 20,
        "fedoracloud.secure_cookies": "false",
        "fedoracloud.auth.backend": "htpasswd",
        "fedoracloud.htpasswd.file": htpasswd,
        "fedoracloud.htpasswd.groups_file": groups,
        "fedoracloud.access_group": "sysadmin-cloud",
        "fedoracloud.admins": "",
        "fedoracloud.instance_dir": base_dir,
        "fedoracloud.page_size": "25",
        "fedoracloud.broker_url": "",
    }


def _seed(server: LiveServer) -> None:
    """The demo's pools, hosts and people; newbie without an access request; the app's CA
    (so "Add a host" issues enrollment tokens)."""
    from fedoracloud.pki import CaSettings, CertificateAuthority

    typed = Settings.from_dict(server.settings)
    CertificateAuthority(CaSettings.from_settings(typed)).init()
    with server.session() as session:
        load_demo(session, typed)
        session.flush()
        session.execute(sa.delete(AccessRequest))


@contextmanager
def start_live_server(db_kind: str, base_dir: str, **extra_settings: Any) -> Iterator[LiveServer]:
    """Serve the app (demo data loaded) on 127.0.0.1:<free port> until the block ends."""
    import waitress

    from fedoracloud.services import tasks as task_queue
    from fedoracloud.services.vm_events import EventService
    from fedoracloud.worker import start_embedded_worker

    os.makedirs(base_dir, exist_ok=True)
    with scratch_database(db_kind, base_dir, "fc_browser", migrated=True) as database_url:
        settings = {**_settings(database_url, base_dir), **extra_settings}
        previous = task_queue.current_dispatcher()
        app = main({}, **settings)
        server = waitress.create_server(
            app, host="127.0.0.1", port=0, threads=8, ident="FedoraCloud"
        )
        live = LiveServer(f"http://127.0.0.1:{server.effective_port}", app, settings)
        # the server's errors (waitress logs what it answered 500 for) go to a file a
        # failing test can read: live_server.errors()
        log_handler = logging.FileHandler(os.path.join(base_dir, "server-errors.log"))
        log_handler.setLevel(logging.WARNING)
        log_handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        for name in ("waitress", "fedoracloud"):
            logging.getLogger(name).addHandler(log_handler)
        live.extras["log"] = log_handler.baseFilename
        _seed(live)
        worker = start_embedded_worker(
            app.registry["dbsession_factory"],
            app.registry["task_settings"],
            app.registry["task_dispatcher"],
        )
        events = EventService(app.registry["dbengine"], rescan_every=0.5).start()
        thread = threading.Thread(target=server.run, name="live-server", daemon=True)
        thread.start()
        try:
            yield live
        finally:
            for name in ("waitress", "fedoracloud"):
                logging.getLogger(name).removeHandler(log_handler)
            log_handler.close()
            server.close()
            thread.join(timeout=5)
            worker.stop()
            worker.join(timeout=10)
            events.stop()
            task_queue.install_dispatcher(previous)
            app.registry["dbengine"].dispose()


@pytest.fixture(scope="session")
def live_server(db_kind: str, tmp_path_factory: Any) -> Iterator[LiveServer]:
    with start_live_server(db_kind, str(tmp_path_factory.mktemp("live"))) as live:
        yield live


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-system-packages test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def login(page: Any, live_server: LiveServer, username: str) -> Any:
    """Log in through the login form as ``username`` (one of :data:`PASSWORDS`)."""
    page.goto(live_server.url("/login"))
    page.fill("#username", username)
    page.fill("#password", PASSWORDS[username])
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "/login" not in page.url, page.content()
    return page


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Callable[..., Any]]:
    contexts: list[Any] = []

    def make(username: str | None = None) -> Any:
        context = browser.new_context(
            base_url=live_server.base_url, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        if username is not None:
            login(page, live_server, username)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def admin_page(new_page: Callable[..., Any]) -> Any:
    return new_page("admin")


@pytest.fixture
def jdoe_page(new_page: Callable[..., Any]) -> Any:
    return new_page("jdoe")


@pytest.fixture
def newbie_page(new_page: Callable[..., Any]) -> Any:
    return new_page("newbie")


def inject_axe(page: Any) -> None:
    """Load axe-core into the page through the DevTools protocol: the pages' own
    Content-Security-Policy (scripts from the site only, no inline ones) stays on."""
    with open(AXE, encoding="utf-8") as source:
        page.evaluate(source.read())


def axe_violations(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[Any]:
    """axe-core's violations of the given impacts on the page as it is now."""
    inject_axe(page)
    result = page.evaluate(
        """async () => await axe.run(document, {
            resultTypes: ['violations'],
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
        })"""
    )
    return [v for v in result["violations"] if v.get("impact") in impacts]


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _server_errors_on_failure(request: Any) -> Iterator[None]:
    """A failing browser test shows what the live server logged while it ran."""
    if "live_server" not in request.fixturenames:
        yield
        return
    live = request.getfixturevalue("live_server")
    before = len(live.errors())
    yield
    logged = live.errors()[before:]
    if logged:
        request.node.add_report_section("call", "live server errors", logged)
