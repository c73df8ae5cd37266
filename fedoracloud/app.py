"""The WSGI application: Pyramid's configuration of every part of FedoraCloud."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.router import Router


def main(global_config: dict[str, Any] | None, **settings: Any) -> Router:
    """The WSGI application factory (``paste.app_factory``)."""
    with Configurator(settings=settings) as config:
        config.include(".settings")
        config.include("pyramid_jinja2")
        config.include(".models")
        config.include(".security")
        config.include(".auth.backends")
        config.include(".services.registration")
        config.include(".worker")
        config.include(".cobbler")
        config.include(".routes")
        config.include(".openapi.validation")
        config.include(".views")
        config.scan(".views")
    return config.make_wsgi_app()
