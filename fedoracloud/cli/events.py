"""``fedoracloud events``: VM state kept current from libvirt's lifecycle events."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from .context import Context, add_command


def cmd_events(ctx: Context, args: argparse.Namespace) -> None:
    """Keep VM state current from libvirt's lifecycle events of every approved host (one
    listener per host in the cluster: PostgreSQL advisory locks), reconciling periodically."""
    from ..services.vm_events import EventService

    ctx.check_database()
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(message)s")
    service = EventService(
        ctx.engine, reconcile_every=args.reconcile_every, rescan_every=args.rescan_every
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service.start()
    print("listening to libvirt events (Ctrl-C stops)", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``events [--reconcile-every S] [--rescan-every S] [--loglevel L]``."""
    events = add_command(sub, "events", cmd_events, "keep VM state current from libvirt's events")
    events.add_argument(
        "--reconcile-every", type=float, default=60.0, help="seconds between reconciles (60)"
    )
    events.add_argument(
        "--rescan-every", type=float, default=10.0, help="seconds between host rescans (10)"
    )
    events.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
