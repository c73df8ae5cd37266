"""``fedoracloud ca``: the app's certificate authority for node certificates."""

from __future__ import annotations

import argparse

from .context import CliError, Context, add_action, add_command


def cmd_ca(ctx: Context, args: argparse.Namespace) -> None:
    """Create the app's CA (once) or describe it."""
    from ..pki import CaError, CaSettings, CertificateAuthority

    ca = CertificateAuthority(CaSettings.from_settings(ctx.settings))
    try:
        if args.ca_command == "init":
            ca.init()
            print(f"CA created in {ca.settings.ca_dir} (key {ca.settings.key_path}, mode 0600)")
        info = ca.describe()
    except CaError as exc:
        raise CliError(str(exc)) from exc
    for key, value in info.items():
        print(f"{key + ':':<20} {value}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ca init|show``."""
    ca = add_command(sub, "ca", cmd_ca, "the app's certificate authority for node certificates")
    actions = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    add_action(actions, "init", "create the CA and the app's libvirt client certificate")
    add_action(actions, "show", "subject, validity, SHA-256 fingerprint and paths")
