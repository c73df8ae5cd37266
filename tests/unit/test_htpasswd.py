"""The htpasswd backend reads files made by Apache's own htpasswd tool (bcrypt and apr1)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from fedoracloud.auth.htpasswd import HtpasswdBackend

HTPASSWD = shutil.which("htpasswd")
needs_apache_tool = pytest.mark.skipif(
    HTPASSWD is None and not os.environ.get("CI"), reason="Apache's htpasswd (apache2-utils)"
)


@needs_apache_tool
@pytest.mark.parametrize("flag, prefix", [("-B", "$2y$"), ("-m", "$apr1$"), ("", "$apr1$")])
def test_files_made_by_apache_htpasswd(tmp_path, flag, prefix):
    path = tmp_path / "htpasswd"
    args = [HTPASSWD or "htpasswd", "-c", "-b"] + ([flag] if flag else [])
    subprocess.run([*args, str(path), "alice", "s3cret pass"], check=True, capture_output=True)
    subprocess.run(
        [HTPASSWD or "htpasswd", "-b", "-B", str(path), "bob", "other"],
        check=True,
        capture_output=True,
    )
    assert path.read_text().splitlines()[0].startswith(f"alice:{prefix}")
    backend = HtpasswdBackend(str(path))
    assert backend.verify("alice", "s3cret pass")
    assert not backend.verify("alice", "s3cret Pass")
    assert backend.verify("bob", "other")
    assert not backend.verify("carol", "other")


def test_rejects_bad_input_without_error(tmp_path):
    backend = HtpasswdBackend(str(tmp_path / "missing"))
    assert not backend.verify("alice", "x")
    backend = HtpasswdBackend(str(tmp_path / "ht"))
    backend.set_password("alice", "pw")
    assert not backend.verify("alice", "")
    assert not backend.verify("", "pw")
    assert not backend.verify("a" * 65, "pw")
    assert not backend.verify("Alice<script>", "pw")
    assert not backend.verify("alice", "p" * 5000)


def test_set_password_is_read_by_apache_tool(tmp_path):
    path = tmp_path / "ht"
    backend = HtpasswdBackend(str(path))
    backend.set_password("alice", "first")
    backend.set_password("bob", "second")
    backend.set_password("alice", "changed")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert backend.verify("alice", "changed") and not backend.verify("alice", "first")
    if HTPASSWD:
        check = subprocess.run(
            [HTPASSWD, "-v", "-b", str(path), "bob", "second"], capture_output=True
        )
        assert check.returncode == 0, check.stderr


def test_reloads_when_the_file_changes(tmp_path):
    path = tmp_path / "ht"
    backend = HtpasswdBackend(str(path))
    backend.set_password("alice", "one")
    assert backend.verify("alice", "one")
    other = HtpasswdBackend(str(path))
    other.set_password("alice", "two")
    os.utime(path, (1, 1))  # a different mtime, even within the same second
    assert backend.verify("alice", "two")
