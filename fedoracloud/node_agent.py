"""The ``fedoracloud-node`` command that runs on nodes (enrollment arrives with its issue)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fedoracloud-node``."""
    parser = argparse.ArgumentParser(
        prog="fedoracloud-node",
        description="FedoraCloud's node agent. Enrollment ('enroll') is not built yet.",
    )
    parser.parse_args(argv)
    print("fedoracloud-node: enrollment is not available in this version", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
