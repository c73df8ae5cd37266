"""``fedoracloud console-proxy``: websockify between the browsers' noVNC and the VMs' VNC."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from .context import EXIT_CONFIG, CliError, Context, add_command


def cmd_console_proxy(ctx: Context, args: argparse.Namespace) -> None:
    """Run the console proxy: websockify with FedoraCloud's one-time token plugin, between
    the browsers' noVNC and the VMs' VNC displays (httpd proxies /console/ to it)."""
    from ..console_proxy import make_server, parse_listen

    console = ctx.settings.console
    try:
        host, port = (
            parse_listen(args.listen) if args.listen else (console.listen_host, console.listen_port)
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_CONFIG) from exc
    ctx.check_database()
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = make_server(ctx.engine, host, port, console.heartbeat)
    except OSError as exc:
        raise CliError(f"console proxy: cannot listen on {host}:{port}: {exc.strerror}") from exc

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt  # serve_forever() returns through the finally below

    signal.signal(signal.SIGTERM, stop)
    print(f"console proxy listening on {host}:{server.port} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``console-proxy [--listen HOST:PORT] [--loglevel L]``."""
    console_proxy = add_command(
        sub, "console-proxy", cmd_console_proxy, "run the console proxy (websockify) for noVNC"
    )
    console_proxy.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where to listen (default: fedoracloud.console_proxy.address/port, 127.0.0.1:6080)",
    )
    console_proxy.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
