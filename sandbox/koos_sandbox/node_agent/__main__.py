"""`python -m koos_sandbox.node_agent --kubeconfig K --node-name N [--workdir D]`: one node
of the cluster K points at, in the foreground until SIGINT/SIGTERM; its processes stop with it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from koos_sandbox.node_agent.agent import NodeAgent
from koos_sandbox.node_agent.client import load_kubeconfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m koos_sandbox.node_agent",
        description="Register a Node with the cluster of a kubeconfig and run the Pods bound "
        "to it (binding unscheduled ones) as local processes, until SIGINT/SIGTERM.",
    )
    parser.add_argument("--kubeconfig", required=True, help="how to reach the API server")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--node-name", required=True, help="the Node to register")
    parser.add_argument("--workdir", help="folder for Pods' files (default: a temporary one)")
    parser.add_argument("--address", default="127.0.0.1", help="kubelet endpoint address")
    parser.add_argument("--port", type=int, default=0, help="kubelet endpoint port (0: any)")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds between beats")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        credentials = load_kubeconfig(args.kubeconfig, args.context)
    except (OSError, ValueError) as error:
        print(f"node agent: {error}", file=sys.stderr)
        return 2

    async def run() -> None:
        agent = NodeAgent(
            credentials,
            args.node_name,
            args.workdir,
            host=args.address,
            port=args.port,
            heartbeat=args.heartbeat,
        )
        await agent.start()
        print(
            f"node agent {args.node_name} ready (kubelet endpoint https://{args.address}:"
            f"{agent.port}, API server {credentials.server})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await agent.stop()
        print(f"node agent {args.node_name} stopped", flush=True)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
