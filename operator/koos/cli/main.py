"""`koos`: the command people run. Subcommands: `operator` (the controller and its webhooks),
`crds` and `demo` live beside it. The local API server is its own program, `koos-sandbox`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence

GC_YOUNG = 20_000


def _operator(args: argparse.Namespace) -> int:
    from koos.handlers.operator import Options, run

    options = Options(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespaces=tuple(args.namespace or ()),
        metrics_port=None if args.metrics_port == 0 else args.metrics_port,
        liveness=args.liveness,
        workers=args.workers,
        webhooks=not args.no_webhooks,
        webhook_host=args.webhook_host,
        webhook_port=args.webhook_port,
        webhook_cert_dir=args.webhook_cert_dir,
        trust_unverified_approvals=args.trust_unverified_approvals,
        signing_secret=args.signing_key_secret,
    )

    if not args.verbose:
        # kopf logs every handled event at INFO, and aiohttp every admission request it
        # serves: thousands of lines (and real CPU) per run.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # An operator allocates in bursts: a watch event is a tree of hundreds of objects, and a
    # fire of many Schedules makes thousands of requests at once. With CPython's default of a
    # young collection every 700 allocations, the objects of requests still in flight are
    # promoted, and full collections (which walk every cached body) follow: pauses of
    # 30-110 ms each, three in the first two seconds of a fire of 1,000 Schedules. A young
    # generation of 20,000 keeps them young; garbage without cycles is freed as before.
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    # kopf handles SIGINT/SIGTERM itself in the main thread and stops gracefully.
    asyncio.run(run(options))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="koos", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)
    operator = commands.add_parser(
        "operator",
        help="run the koos operator against a cluster (or a sandbox)",
        description="Run the operator in the foreground until SIGINT/SIGTERM. Credentials: "
        "--kubeconfig, else the in-cluster ServiceAccount, else $KUBECONFIG/~/.kube/config.",
    )
    operator.add_argument("--kubeconfig", help="kubeconfig file to use")
    operator.add_argument("--context", help="kubeconfig context to use")
    scope = operator.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", help="serve only this namespace (repeatable)"
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="serve every namespace (default)"
    )
    operator.add_argument(
        "--metrics-port", type=int, default=9090, help="Prometheus metrics port (0: none)"
    )
    operator.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    operator.add_argument(
        "--workers", type=int, default=16, help="Executions reconciled at the same time"
    )
    operator.add_argument(
        "--no-webhooks",
        action="store_true",
        help="do not serve admission webhooks: approval decisions are then unverified",
    )
    operator.add_argument(
        "--webhook-host",
        default="127.0.0.1",
        help="address the webhooks listen on and the API server calls (default 127.0.0.1)",
    )
    operator.add_argument("--webhook-port", type=int, default=0, help="webhook port (0: any)")
    operator.add_argument(
        "--webhook-cert-dir",
        help="folder with the webhook server's tls.crt and tls.key (and ca.crt, published as "
        "the caBundle); default: a self-signed certificate for --webhook-host",
    )
    operator.add_argument(
        "--trust-unverified-approvals",
        action="store_true",
        help="DEVELOPMENT ONLY: count approval decisions nobody verified",
    )
    operator.add_argument(
        "--signing-key-secret",
        default="default/koos-approval-key",
        metavar="NAMESPACE/NAME",
        help="Secret holding the key that signs recorded approval decisions (made if missing)",
    )
    operator.set_defaults(run=_operator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
