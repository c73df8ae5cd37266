"""The ``fedoracloud`` command on a real ini and a real database: run in the test process
(``tests/cli.py``), and as a real process in the smoke tests at the end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..cli import fedoracloud

pytestmark = pytest.mark.integration


def write_ini(directory: Path, url: str, **extra: str) -> Path:
    settings = {
        "use": "egg:fedoracloud",
        "sqlalchemy.url": url,
        "fedoracloud.session_secret": "cli-test-secret-0123456789",
        "fedoracloud.secure_cookies": "false",
        "fedoracloud.htpasswd.file": str(directory / "htpasswd"),
        "fedoracloud.instance_dir": str(directory / "var"),
        "fedoracloud.admins": "admin",
        **extra,
    }
    ini = directory / "test.ini"
    ini.write_text("[app:main]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return ini


def fc(ini: Path | str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``fedoracloud -c INI ARGS…``, in this process."""
    return fedoracloud("-c", str(ini), *args, stdin=stdin)


def fc_process(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m fedoracloud.cli ARGS…``, as a process of its own."""
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "fedoracloud.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def ini(tmp_path, empty_database):
    return write_ini(tmp_path, empty_database)


def test_initdb_is_idempotent_and_pool_commands_work(ini):
    first = fc(ini, "initdb")
    assert first.returncode == 0, first.stderr
    assert fc(ini, "initdb").returncode == 0
    made = fc(ini, "pool", "create", "fedora", "--kind", "hardware", "--parent", "root/hardware")
    assert made.returncode == 0, made.stderr
    assert (
        fc(ini, "pool", "create", "builders", "--kind", "vm", "--parent", "fedora").returncode == 0
    )
    listing = fc(ini, "pool", "list").stdout
    assert "root/hardware/fedora/builders" in listing
    moved = fc(ini, "pool", "move", "fedora", "--parent", "root/hardware/default")
    assert moved.returncode == 0, moved.stderr
    assert "root/hardware/default/fedora/builders" in fc(ini, "pool", "list").stdout
    refused = fc(ini, "pool", "delete", "fedora")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "fedoracloud: error: pool 'fedora' is not empty: it holds 1 sub-pool;"
        " move or delete them first"
    )
    bad_vm = fc(ini, "pool", "create", "x", "--kind", "vm", "--parent", "root")
    assert bad_vm.returncode == 1
    assert "a VM pool must be inside a hardware pool" in bad_vm.stderr
    assert fc(ini, "pool", "delete", "root/hardware/default/fedora/builders").returncode == 0
    assert "builders" not in fc(ini, "pool", "list").stdout


def test_demo_then_host_commands(ini):
    demo = fc(ini, "demo")
    assert demo.returncode == 0, demo.stderr
    assert "[8/8]" in demo.stdout
    assert "demo login: 'admin' with password" in demo.stdout
    again = fc(ini, "demo")
    assert again.returncode == 0 and "password" not in again.stdout
    hosts = fc(ini, "host", "list").stdout.splitlines()
    assert len(hosts) == 8
    shown = json.loads(fc(ini, "host", "show", "node04.cloud.fedoraproject.org").stdout)
    assert shown["pool"] == "root/hardware/fedora"
    assert shown["memory_mib"] == 16384 and shown["cpus"] == 8
    assert len(shown["nics"]) == 2
    missing = fc(ini, "host", "show", "nosuchhost")
    assert missing.returncode == 1 and "no host 'nosuchhost'" in missing.stderr


def test_user_add(tmp_path, empty_database):
    groups = tmp_path / "groups"
    groups.write_text("# access\nsysadmin-cloud: @admin ~carol  # carol waits\nother: carol\n")
    ini = write_ini(tmp_path, empty_database, **{"fedoracloud.htpasswd.groups_file": str(groups)})
    assert fc(ini, "initdb").returncode == 0
    added = fc(ini, "user", "add", "carol", "--admin", "--password-stdin", stdin="pw-carol\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "user carol (super admin) can log in\n"
    from fedoracloud.auth.htpasswd import HtpasswdBackend

    assert HtpasswdBackend(str(tmp_path / "htpasswd")).verify("carol", "pw-carol")
    assert groups.read_text() == (
        "# access\nsysadmin-cloud: @admin carol  # carol waits\nother: carol\n"
    )
    plain = fc(ini, "user", "add", "dave", "--password-stdin", stdin="pw-dave\n")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == (
        "user dave can log in, but is not let in (not an approved member of sysadmin-cloud):"
        " they will see the access request page\n"
    )
    bad = fc(ini, "user", "add", "Bad Name", "--password-stdin", stdin="x\n")
    assert bad.returncode == 1 and "username" in bad.stderr
    empty = fc(ini, "user", "add", "erin", "--password-stdin", stdin="\n")
    assert empty.returncode == 1 and "empty password" in empty.stderr

    # what it printed is true: carol logs in and is let in as a super admin, dave is not
    import webtest

    from fedoracloud.app import main as make_app
    from fedoracloud.settings import read_app_settings

    for username, password, lands in (("carol", "pw-carol", 200), ("dave", "pw-dave", 303)):
        app = webtest.TestApp(make_app({}, **read_app_settings(str(ini))))
        form = app.get("/login").forms[0]
        form["username"], form["password"] = username, password
        assert form.submit().status_int == 303
        page = app.get("/pools")
        assert page.status_int == lands
        if lands == 200:
            assert "(super admin)" in page.text
        else:
            assert page.location.endswith("/access")


def test_user_add_admin_without_a_groups_file_changes_nothing(ini, tmp_path):
    assert fc(ini, "initdb").returncode == 0
    refused = fc(ini, "user", "add", "frank", "--admin", "--password-stdin", stdin="pw\n")
    assert refused.returncode == 1
    assert "setting fedoracloud.htpasswd.groups_file is empty" in refused.stderr
    assert not (tmp_path / "htpasswd").exists()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["initdb"],
        ["demo"],
        ["serve"],
        ["pool"],
        ["pool", "create"],
        ["host"],
        ["host", "show"],
        ["user", "add"],
    ],
)
def test_help_on_each_command(command):
    result = fedoracloud(*command, "--help")
    assert result.returncode == 0 and "usage: fedoracloud" in result.stdout


def test_missing_ini(tmp_path):
    result = fc(tmp_path / "nope.ini", "initdb")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"fedoracloud: error: configuration file {tmp_path / 'nope.ini'} does not exist"
        " (give one with -c)"
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("this is not an ini file\n", "cannot read"),
        ("[server:main]\nuse = egg:waitress#main\n", "cannot read"),
    ],
)
def test_broken_ini(tmp_path, content, message):
    ini = tmp_path / "broken.ini"
    ini.write_text(content)
    result = fc(ini, "initdb")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    "extra, setting",
    [
        ({"fedoracloud.session_secret": "short"}, "fedoracloud.session_secret"),
        ({"fedoracloud.auth.backend": "ldap"}, "fedoracloud.auth.backend"),
        ({"fedoracloud.page_size": "many"}, "fedoracloud.page_size"),
        ({"sqlalchemy.url": "nonsense"}, "sqlalchemy.url"),
        ({"sqlalchemy.url": "nosuchdriver://x/y"}, "sqlalchemy.url"),
    ],
)
def test_bad_setting_is_named(tmp_path, extra, setting):
    ini = write_ini(tmp_path, "sqlite:///" + str(tmp_path / "db.sqlite"), **extra)
    result = fc(ini, "initdb")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"setting {setting}" in lines[0], result.stderr


def test_unreachable_database(tmp_path):
    ini = write_ini(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    result = fc(ini, "initdb")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "fedoracloud: error: cannot reach the database of setting sqlalchemy.url"
        " (postgresql+psycopg://postgres@127.0.0.1:1/nowhere)"
    )


# -- smoke tests: the command as a process of its own ------------------------------------------


def test_the_command_runs_as_a_process(tmp_path):
    assert "usage: fedoracloud" in fc_process("--help").stdout
    result = fc_process("-c", str(tmp_path / "nope.ini"), "initdb")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"fedoracloud: error: configuration file {tmp_path / 'nope.ini'} does not exist"
        " (give one with -c)"
    )


def test_a_command_that_touches_the_database_runs_as_a_process(ini):
    assert fc_process("-c", str(ini), "initdb").returncode == 0
    listing = fc_process("-c", str(ini), "pool", "list")
    assert listing.returncode == 0, listing.stderr
    assert "root/hardware" in listing.stdout


def test_a_reader_that_goes_away_ends_the_command_quietly(ini):
    """``fedoracloud pool list | head``: no BrokenPipeError traceback."""
    assert fc(ini, "initdb").returncode == 0
    command = [sys.executable, "-W", "ignore", "-m", "fedoracloud.cli", "-c", str(ini), "pool"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the command writes
    try:
        done = subprocess.run(
            [*command, "list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141  # 128 + SIGPIPE, as a command the signal ended


def test_serve_prints_no_pkg_resources_warning(ini):
    """The entry point silences Pyramid's pkg_resources deprecation warning itself."""
    assert fc(ini, "initdb").returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    server = subprocess.Popen(
        [sys.executable, "-m", "fedoracloud.cli", "-c", str(ini), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # the app is made before serve says where it listens
        assert "FedoraCloud is serving on" in line, server.stderr.read() if server.stderr else ""
    finally:
        server.terminate()
        _out, err = server.communicate(timeout=30)
    assert "pkg_resources" not in err and "Warning" not in err, err
