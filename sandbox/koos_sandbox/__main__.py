"""`koos-sandbox`: a local Kubernetes API server (and Job runner) in the foreground.

`python -m koos_sandbox --kubeconfig PATH` serves on 127.0.0.1 until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence


def _parse_users(values: Sequence[str]) -> dict[str, tuple[str, ...]]:
    users: dict[str, tuple[str, ...]] = {"alice": ("sre",), "bob": ("dev",)}
    for value in values:
        for item in value.split(";"):
            name, _, groups = item.partition(":")
            if not name:
                raise argparse.ArgumentTypeError(f"--user {value!r}: expected NAME:GROUP,GROUP")
            users[name] = tuple(g for g in groups.split(",") if g)
    return users


def _sandbox(args: argparse.Namespace) -> int:
    from koos_sandbox.app import Sandbox

    async def serve() -> None:
        sandbox = Sandbox(
            port=args.port,
            crds=args.crds,
            jobs_mode=args.jobs,
            users=_parse_users(args.user),
            seed=args.seed,
        )
        # Signals are handled before "ready" is said: a caller may stop it at once after.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await sandbox.start()
        sandbox.write_kubeconfig(args.kubeconfig)
        print(f"koos-sandbox ready at {sandbox.url} (kubeconfig: {args.kubeconfig})", flush=True)
        await stop.wait()
        await sandbox.stop()
        print("koos-sandbox stopped", flush=True)

    asyncio.run(serve())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koos-sandbox",
        description="Run the sandbox API server in the foreground on 127.0.0.1 until "
        "SIGINT/SIGTERM. It writes a kubeconfig whose current context is an admin, with a "
        "context per named user (default: alice in group sre, bob in group dev).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    parser.add_argument("--crds", help="a folder of CustomResourceDefinition YAML to load")
    parser.add_argument(
        "--jobs",
        choices=("local", "scripted"),
        default="local",
        help="local: run containers' commands as local processes; scripted: tests decide",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:GROUP,GROUP",
        help="add a user with a context of their own (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault injector")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return _sandbox(args)


if __name__ == "__main__":
    sys.exit(main())
