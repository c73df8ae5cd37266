"""Puppet's side: ``fedoracloud enc`` (the external node classifier), ``node-config`` and
``web-config`` (the files Puppet would write, under a directory)."""

from __future__ import annotations

import argparse
import sys

from .context import EXIT_CONFIG, CliError, Context, add_command


def _puppet_config_error(exc: Exception) -> CliError:
    return CliError(str(exc), EXIT_CONFIG)


def cmd_enc(ctx: Context, args: argparse.Namespace) -> None:
    """Print Puppet's node document for a certname as YAML (exit 1 for an unknown one)."""
    from ..puppet.enc import EncService
    from ..settings import ConfigError

    try:
        with ctx.session() as dbsession:
            document = EncService(ctx.service_context(dbsession)).classify(args.certname).to_yaml()
    except ConfigError as exc:
        raise _puppet_config_error(exc) from exc
    sys.stdout.write(document)


def cmd_node_config(ctx: Context, args: argparse.Namespace) -> None:
    """Write an approved node's config files under DIR at their real paths."""
    from ..puppet import check_certname, write_files
    from ..puppet.enc import APPROVED_STATES, EncService
    from ..settings import ConfigError

    try:
        with ctx.session() as dbsession:
            enc = EncService(ctx.service_context(dbsession))
            name = check_certname(args.certname)
            host = enc.host_for(name)
            if host is None:
                raise CliError(f"no host is named {name}")
            if host.state not in APPROVED_STATES:
                raise CliError(f"host {name} is {host.state}: it gets configs once approved")
            files = enc.node_files(host)
    except ConfigError as exc:
        raise _puppet_config_error(exc) from exc
    for path in write_files(files, args.out):
        print(path)


def cmd_web_config(ctx: Context, args: argparse.Namespace) -> None:
    """Write the UI boxes' httpd conf.d file under DIR at its real path."""
    from ..puppet import ConfigRenderer, write_files
    from ..settings import ConfigError

    try:
        renderer = ConfigRenderer(ctx.settings.puppet)
        files = renderer.balancer_files() if args.balancer else renderer.web_files()
    except ConfigError as exc:
        raise _puppet_config_error(exc) from exc
    for path in write_files(files, args.out):
        print(path)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``enc CERTNAME``, ``node-config CERTNAME --out DIR``, ``web-config --out DIR``."""
    enc = add_command(
        sub, "enc", cmd_enc, "Puppet's external node classifier: a certname's classes as YAML"
    )
    enc.add_argument("certname", help="the node's Puppet certname (its host name)")
    node_config = add_command(
        sub,
        "node-config",
        cmd_node_config,
        "write an approved node's config files under a directory",
    )
    node_config.add_argument("certname", help="the node's host name")
    node_config.add_argument("--out", required=True, metavar="DIR", help="e.g. DIR/etc/...")
    web_config = add_command(
        sub, "web-config", cmd_web_config, "write the UI boxes' httpd conf under a directory"
    )
    web_config.add_argument("--out", required=True, metavar="DIR", help="e.g. DIR/etc/httpd/...")
    web_config.add_argument(
        "--balancer",
        action="store_true",
        help="the load balancer's conf instead: TLS in front of fedoracloud.web.backends",
    )
