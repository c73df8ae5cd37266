"""``fedoracloud serve``: the web UI and the API (and, in the demo, the tasks and events)."""

from __future__ import annotations

import argparse

from .context import Context, add_command


def cmd_serve(ctx: Context, args: argparse.Namespace) -> None:
    """Serve the web UI and API."""
    import waitress
    from pyramid.paster import get_app, setup_logging

    ctx.check_database()
    task_settings = ctx.task_settings()
    setup_logging(ctx.ini)
    app = get_app(ctx.ini, "main")
    if task_settings.embedded:  # no broker: this process runs the tasks (the demo)
        from ..services.vm_events import EventService
        from ..worker import start_embedded_worker

        start_embedded_worker(
            app.registry["dbsession_factory"], task_settings, app.registry["task_dispatcher"]
        )
        EventService(app.registry["dbengine"]).start()  # VM state from libvirt's events
    if ctx.settings.console.embedded_proxy:  # all-in-one: the console proxy runs here too
        from ..console_proxy import make_server, start

        console = ctx.settings.console
        try:
            engine = app.registry["dbengine"]
            start(make_server(engine, console.listen_host, console.listen_port, console.heartbeat))
            print(f"console proxy on {console.listen_host}:{console.listen_port}", flush=True)
        except OSError as exc:
            print(f"console proxy not started ({console.listen_port}: {exc.strerror})", flush=True)
    print(
        f"FedoraCloud is serving on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True
    )
    waitress.serve(app, host=args.host, port=args.port, threads=8, ident="FedoraCloud")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``serve [--host H] [--port P]``."""
    serve = add_command(sub, "serve", cmd_serve, "serve the web UI and the API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=6543, help="port to listen on")
