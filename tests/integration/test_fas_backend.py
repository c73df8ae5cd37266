"""The FAS2 login backend against a FAS2 server on a real socket, through the real
python-fedora client: logins, memberships with role type and status, group member
lists, and what a user sees when FAS is down or broken."""

from __future__ import annotations

import pickle
import time
from typing import Any

import pytest

from fedoracloud.auth import BackendUnavailable, Membership, Person
from fedoracloud.auth.fas import FasBackend
from fedoracloud.settings import ConfigError, Settings
from tests.fas_server import FasServer, fas_server

pytestmark = pytest.mark.integration

__all__ = ["fas_server"]  # the fixture, imported for pytest

ACCESS = "sysadmin-cloud"


def make_backend(
    server: FasServer,
    username: str = "cloudsvc",
    password: str = "service-password",  # noqa: S107
    **options: Any,
) -> FasBackend:
    settings = Settings(
        database_url="sqlite://",
        session_secret="fas-test-secret-0123456789",
        auth_backend="fas",
        access_group=ACCESS,
        fas_base_url=server.base_url,
        fas_username=username,
        fas_password=password,
    )
    return FasBackend(settings, **options)


@pytest.fixture
def fas(fas_server: FasServer) -> FasServer:
    """The server with the people of these tests."""
    fas_server.add_person(
        "alice", "alice-pw", "Alice Liddell", "alice@example.org",
        groups={ACCESS: "user", "packager": "sponsor"},
    )  # fmt: skip
    fas_server.add_person("root", "root-pw", "Rooty Admin", groups={ACCESS: "administrator"})
    fas_server.add_person("sam", "sam-pw", "Sam Sponsor", groups={ACCESS: "sponsor"})
    fas_server.add_person(
        "carol", "carol-pw", "Carol Applicant", groups={ACCESS: ("user", "unapproved")}
    )
    fas_server.add_person("dave", "dave-pw", "Dave Outsider", groups={"packager": "user"})
    fas_server.add_person("gone", "gone-pw", "Disabled", status="admin_disabled")
    return fas_server


@pytest.fixture
def backend(fas: FasServer) -> FasBackend:
    return make_backend(fas)


def test_approved_member_logs_in_with_name_email_and_memberships(
    backend: FasBackend, fas: FasServer
) -> None:
    person = backend.authenticate("alice", "alice-pw")

    assert person == Person(
        username="alice",
        display_name="Alice Liddell",
        email="alice@example.org",
        memberships=(
            Membership("packager", "sponsor", "approved"),
            Membership(ACCESS, "user", "approved"),
        ),
    )
    # the password was checked as alice, the memberships read as the service account
    assert [r.user for r in fas.seen("home")] == ["alice"]
    assert [r.user for r in fas.seen("json/person_by_username")] == ["cloudsvc"]


def test_administrator(backend: FasBackend) -> None:
    person = backend.authenticate("root", "root-pw")
    assert person is not None
    assert person.memberships == (Membership(ACCESS, "administrator", "approved"),)


def test_unapproved_member_is_reported_as_unapproved(backend: FasBackend) -> None:
    person = backend.authenticate("carol", "carol-pw")
    assert person is not None
    assert person.memberships == (Membership(ACCESS, "user", "unapproved"),)


def test_non_member_logs_in_without_the_access_group(backend: FasBackend) -> None:
    person = backend.authenticate("dave", "dave-pw")
    assert person is not None
    assert person.memberships == (Membership("packager", "user", "approved"),)
    assert ACCESS not in {m.group for m in person.memberships}


def test_wrong_password_is_none_and_reads_nothing(backend: FasBackend, fas: FasServer) -> None:
    assert backend.authenticate("alice", "not-her-password") is None
    assert fas.seen("json/person_by_username") == []


def test_unknown_user_is_none(backend: FasBackend) -> None:
    assert backend.authenticate("nobody", "whatever") is None


def test_disabled_account_is_none(backend: FasBackend) -> None:
    assert backend.authenticate("gone", "gone-pw") is None


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("", "alice-pw"),
        ("Alice", "alice-pw"),
        ("alice/../x", "alice-pw"),
        ("a" * 65, "alice-pw"),
        ("alice\n", "alice-pw"),
        ("alice", ""),
        ("alice", "x" * 1025),
    ],
)
def test_unacceptable_input_never_reaches_fas(
    backend: FasBackend, fas: FasServer, username: str, password: str
) -> None:
    assert backend.authenticate(username, password) is None
    if username != "alice":
        assert backend.memberships(username) is None
    assert fas.requests == []


@pytest.mark.parametrize(
    "group", ["", "Sysadmin", "../home", "a" * 65, "-x", "cloud ops", f"{ACCESS}\n"]
)
def test_unacceptable_group_names_never_reach_fas(
    backend: FasBackend, fas: FasServer, group: str
) -> None:
    assert backend.group_members(group) == []
    assert fas.requests == []


def test_server_down_is_backend_unavailable_with_a_clear_message(
    backend: FasBackend, fas: FasServer, capfd: Any
) -> None:
    fas.stop()
    expected = f"FAS could not be reached: no connection to 127.0.0.1:{fas.port}"

    with pytest.raises(BackendUnavailable) as login:
        backend.authenticate("alice", "alice-pw")
    assert str(login.value) == expected
    with pytest.raises(BackendUnavailable, match=r"^FAS could not be reached: no connection"):
        backend.memberships("alice")
    with pytest.raises(BackendUnavailable, match=r"^FAS could not be reached: no connection"):
        backend.group_members(ACCESS)
    # python-fedora's own stderr handlers are detached: nothing printed in the user's face
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("html", "its answer was not FAS's JSON"),
        ("http500", "it answered HTTP 500"),
        ("exc", "it reported an error (ProgrammingError)"),
        ("shape", "it answered something that is not a FAS answer"),
    ],
)
def test_nonsense_answers_are_backend_unavailable(
    backend: FasBackend, fas: FasServer, fault: str, reason: str
) -> None:
    fas.fault = fault
    with pytest.raises(BackendUnavailable) as login:
        backend.authenticate("alice", "alice-pw")
    assert str(login.value) == f"FAS could not be reached: {reason}"
    with pytest.raises(BackendUnavailable, match=r"^FAS could not be reached: "):
        backend.memberships("alice")
    with pytest.raises(BackendUnavailable, match=r"^FAS could not be reached: "):
        backend.group_members(ACCESS)


def test_a_slow_server_times_out(fas: FasServer) -> None:
    backend = make_backend(fas, timeout=0.3)
    fas.delay = 5.0
    # the client's own timeout gave up (the message says so), not the server's answer
    with pytest.raises(BackendUnavailable, match=r"no answer within 0\.3 seconds"):
        backend.authenticate("alice", "alice-pw")
    with pytest.raises(BackendUnavailable, match=r"no answer within 0\.3 seconds"):
        backend.memberships("alice")


def test_a_refused_service_account_is_backend_unavailable(fas: FasServer) -> None:
    backend = make_backend(fas, password="wrong-service-password")
    with pytest.raises(BackendUnavailable, match="refused FedoraCloud's service account"):
        backend.authenticate("alice", "alice-pw")
    with pytest.raises(BackendUnavailable, match="refused FedoraCloud's service account"):
        backend.group_members(ACCESS)


def test_group_members_lists_each_member_with_role_and_status(backend: FasBackend) -> None:
    members = {p.username: p for p in backend.group_members(ACCESS)}

    assert set(members) == {"alice", "root", "sam", "carol"}
    assert members["alice"] == Person(
        "alice", "Alice Liddell", "alice@example.org", (Membership(ACCESS, "user", "approved"),)
    )
    assert members["root"].memberships == (Membership(ACCESS, "administrator", "approved"),)
    assert members["sam"].memberships == (Membership(ACCESS, "sponsor", "approved"),)
    assert members["carol"].memberships == (Membership(ACCESS, "user", "unapproved"),)
    assert members["carol"].display_name == "Carol Applicant"


def test_group_members_of_an_unknown_or_empty_group(backend: FasBackend, fas: FasServer) -> None:
    fas.add_group("empty-group")
    assert backend.group_members("no-such-group") == []
    assert backend.group_members("empty-group") == []


def test_group_members_is_cached_for_a_while(fas: FasServer) -> None:
    backend = make_backend(fas, cache_ttl=60)
    first = backend.group_members(ACCESS)
    asked = len(fas.requests)
    fas.add_membership("dave", ACCESS)

    assert backend.group_members(ACCESS) == first  # from the cache: FAS not asked
    assert len(fas.requests) == asked
    backend.clear_cache()
    assert "dave" in {p.username for p in backend.group_members(ACCESS)}


def test_group_members_cache_expires(fas: FasServer) -> None:
    backend = make_backend(fas, cache_ttl=0.05)
    assert "dave" not in {p.username for p in backend.group_members(ACCESS)}
    fas.add_membership("dave", ACCESS)
    time.sleep(0.1)
    assert "dave" in {p.username for p in backend.group_members(ACCESS)}


def test_memberships_recheck_sees_a_removal_on_the_server(
    backend: FasBackend, fas: FasServer
) -> None:
    assert backend.memberships("alice") == (
        Membership("packager", "sponsor", "approved"),
        Membership(ACCESS, "user", "approved"),
    )
    fas.remove_membership("alice", ACCESS)
    assert backend.memberships("alice") == (Membership("packager", "sponsor", "approved"),)
    fas.remove_person("alice")
    assert backend.memberships("alice") is None
    assert backend.memberships("nobody") is None


def test_memberships_of_a_disabled_account_is_none(backend: FasBackend, fas: FasServer) -> None:
    assert backend.memberships("alice") is not None
    fas.people["alice"].status = "admin_disabled"
    assert backend.memberships("alice") is None


def test_memberships_sees_an_approval(backend: FasBackend, fas: FasServer) -> None:
    assert backend.memberships("carol") == (Membership(ACCESS, "user", "unapproved"),)
    fas.add_membership("carol", ACCESS, "user", "approved")
    assert backend.memberships("carol") == (Membership(ACCESS, "user", "approved"),)


def test_private_names_hidden_from_a_plain_service_account(fas: FasServer) -> None:
    fas.add_person("plainsvc", "plain-pw")
    fas.add_person("priv", "priv-pw", "Private Person", privacy=True, groups={ACCESS: "user"})
    backend = make_backend(fas, username="plainsvc", password="plain-pw")

    person = backend.authenticate("priv", "priv-pw")
    assert person is not None
    assert person.display_name == ""
    assert person.memberships == (Membership(ACCESS, "user", "approved"),)
    members = {p.username: p for p in backend.group_members(ACCESS)}
    assert members["priv"].display_name == ""
    assert members["alice"].display_name == "Alice Liddell"


def test_service_session_is_kept_in_memory_only(
    fas: FasServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a session a command-line user of the same account left in ~/.fedora is not used
    import fedora.client.baseclient as baseclient

    planted = tmp_path / "fedora_session"
    planted.write_bytes(pickle.dumps({"cloudsvc": "planted-session"}))
    monkeypatch.setattr(baseclient, "b_SESSION_FILE", str(planted))
    monkeypatch.setattr(baseclient, "b_SESSION_DIR", str(tmp_path))
    backend = make_backend(fas)

    backend.memberships("alice")
    backend.memberships("root")

    cookies = [r.session_cookie for r in fas.requests]
    assert cookies[0] is None
    # FAS's tg-visit session from the first answer is sent back with the next request
    assert cookies[1] is not None and fas.sessions == {cookies[1]: "cloudsvc"}
    assert "planted-session" not in cookies
    assert planted.read_bytes() == pickle.dumps({"cloudsvc": "planted-session"})


def test_settings_without_service_account_are_refused(fas: FasServer) -> None:
    with pytest.raises(ConfigError, match=r"fedoracloud\.fas\.username"):
        make_backend(fas, username="")
    with pytest.raises(ConfigError, match=r"fedoracloud\.fas\.password"):
        make_backend(fas, password="")


def test_server_speaks_tg_sessions_with_csrf_tokens(fas: FasServer) -> None:
    # the protocol details python-fedora relies on, checked with its proxy client
    from fedora.client import AuthError, FasProxyClient

    proxy = FasProxyClient(fas.base_url, timeout=5)
    session, answer = proxy.login("alice", "alice-pw")
    assert session and answer["user"]["username"] == "alice"
    session, person = proxy.person_by_id(fas.people["root"].id, auth_params={"session_id": session})
    assert person["username"] == "root"
    assert person["group_roles"][ACCESS]["role_type"] == "administrator"
    assert proxy.verify_session(session)
    proxy.logout(session)
    assert not proxy.verify_session(session)
    with pytest.raises(AuthError):
        proxy.send_request("/json/person_by_username", req_params={"username": "alice"})
