"""The ``watchcache`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from ._demo import run_demo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchcache",
        description="A shared, tenant-safe etcd watch cache for Kubernetes aggregated API servers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="exercise the embedded Python API against etcd and print what a watcher sees"
    )
    demo.add_argument(
        "--etcd-servers",
        default="",
        help="comma-separated etcd URLs; without it a private etcd is started (needs 'etcd' on PATH)",
    )
    demo.add_argument("--etcd-prefix", default="/registry", help="key prefix in etcd (default /registry)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "demo":
        servers = [s for s in args.etcd_servers.split(",") if s]
        try:
            asyncio.run(run_demo(servers, args.etcd_prefix))
        except KeyboardInterrupt:
            return 130
        except Exception as err:  # one line for the user, not a traceback
            print(f"watchcache demo: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
