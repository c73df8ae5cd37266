"""The layering rules a reviewer would otherwise check by hand: the web layer (views, route
factories, routes) leaves every authorization decision to the security policy, and views
leave SQL to the services."""

from __future__ import annotations

import ast
from pathlib import Path

import fedoracloud

PACKAGE = Path(fedoracloud.__file__).parent
VIEWS = sorted((PACKAGE / "views").rglob("*.py"))
WEB_LAYER = [*VIEWS, PACKAGE / "resources.py", PACKAGE / "routes.py"]


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"


def _nodes(path: Path) -> list[ast.AST]:
    return list(ast.walk(ast.parse(path.read_text(), str(path))))


def test_only_the_security_policy_asks_whether_someone_is_a_super_admin():
    """A view or a factory asks for a permission (``permission=`` on the view, or
    ``request.has_permission``); SecurityPolicy.permits() alone looks at the identity."""
    offenders = [
        _where(path, node)
        for path in WEB_LAYER
        for node in _nodes(path)
        if isinstance(node, ast.Attribute) and node.attr == "is_super_admin"
    ]
    assert offenders == []


def test_views_leave_sql_to_the_services():
    """No view builds a query (``select``/``func`` from sqlalchemy) or talks to the session
    (``request.dbsession.<anything>``): it asks a service."""
    offenders = []
    for path in VIEWS:
        for node in _nodes(path):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                names = {alias.name for alias in node.names}
                if names & {"select", "func"}:
                    offenders.append(f"{_where(path, node)} imports {sorted(names)}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute | ast.Name)
                and getattr(node.value, "attr", getattr(node.value, "id", "")) == "dbsession"
            ):
                offenders.append(f"{_where(path, node)} calls dbsession.{node.attr}")
    assert offenders == []


def test_the_web_layer_is_where_this_test_looks():
    assert len(VIEWS) > 20
    assert all(path.exists() for path in WEB_LAYER)
