"""The node agent runs on a node without the web stack: ``fedoracloud.node_agent`` imports
with Pyramid, SQLAlchemy, WebOb, zope and transaction blocked, ``fedoracloud-node --help``
works, and it needs nothing beyond what ``pip install 'fedoracloud[node]'`` installs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import setuptools

ROOT = Path(__file__).resolve().parents[2]
WEB_STACK = ["pyramid", "sqlalchemy", "webob", "zope", "transaction"]

#: a meta-path finder that refuses the blocked top-level modules (or, given an allow list,
#: every module outside it), then the node agent run as ``fedoracloud-node``
GUARDED_RUN = """
import importlib.abc, runpy, sys

BLOCKED, ALLOWED = %r, %r

class Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in BLOCKED or (ALLOWED is not None and top not in ALLOWED):
            raise ImportError(f"{name} is not installed on this node")
        return None

sys.meta_path.insert(0, Guard())
sys.argv = ["fedoracloud-node", *sys.argv[1:]]
runpy.run_module("fedoracloud.node_agent", run_name="__main__")
"""


def run_guarded(
    *args: str, blocked: list[str], allowed: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", GUARDED_RUN % (blocked, allowed), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def setup_arguments() -> dict[str, Any]:
    """setup.py's arguments, read by running it with setuptools.setup() replaced."""
    seen: dict[str, Any] = {}
    source = (ROOT / "setup.py").read_text(encoding="utf-8")
    original, cwd = setuptools.setup, Path.cwd()
    setuptools.setup = lambda **kwargs: seen.update(kwargs)  # type: ignore[assignment]
    os.chdir(ROOT)  # setup.py reads README.md
    try:
        exec(compile(source, "setup.py", "exec"), {"__name__": "__main__"})  # noqa: S102
    finally:
        os.chdir(cwd)
        setuptools.setup = original
    return seen


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_node_agent_runs_with_the_web_stack_blocked() -> None:
    done = run_guarded("--help", blocked=WEB_STACK)
    assert done.returncode == 0, done.stderr
    assert "enroll" in done.stdout
    enroll_help = run_guarded("enroll", "--help", blocked=WEB_STACK)
    assert enroll_help.returncode == 0, enroll_help.stderr
    assert "--ca-fingerprint" in enroll_help.stdout


def test_the_node_extra_is_all_the_agent_needs() -> None:
    arguments = setup_arguments()
    node = {
        requirement_name(r)
        for r in arguments["install_requires"] + arguments["extras_require"]["node"]
    }
    assert node == {"libvirt-python", "cryptography"}
    assert "pyramid" in {requirement_name(r) for r in arguments["extras_require"]["web"]}

    installed, todo = set(), list(node)  # the node's requirements and what they pull in
    while todo:
        name = todo.pop()
        if name not in installed:
            installed.add(name)
            todo += [
                requirement_name(r) for r in metadata.requires(name) or [] if "extra ==" not in r
            ]
    modules = [
        module
        for module, dists in metadata.packages_distributions().items()
        if {requirement_name(d) for d in dists} & installed
    ]
    allowed = sorted({*sys.stdlib_module_names, *modules, "fedoracloud"})
    done = run_guarded("enroll", "--help", blocked=[], allowed=allowed)
    assert done.returncode == 0, done.stderr
    assert "--ca-fingerprint" in done.stdout
