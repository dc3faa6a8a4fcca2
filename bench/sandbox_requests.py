"""How many simple requests per second the sandbox serves: GET, merge-PATCH, watch events.

The sandbox runs as `koos-sandbox` in a process of its own (as for the demo), the load comes
from this process over HTTPS on loopback with a few concurrent connections. Every loop is
bounded in count and time. Usage:

    .venv/bin/python bench/sandbox_requests.py [--requests N] [--concurrency C] [--write FILE]

The figures bound every later benchmark of the operator against the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from benchlib import client

CM = "/api/v1/namespaces/default/configmaps"


def start_sandbox(workdir: Path) -> tuple[subprocess.Popen[str], str, str, ssl.SSLContext]:
    kubeconfig = workdir / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "koos_sandbox",
            "--kubeconfig",
            str(kubeconfig),
            "--jobs",
            "scripted",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line}")
    return (proc, *client(kubeconfig))


async def timed(count: int, concurrency: int, one: object) -> float:
    """Run `one(i)` `count` times over `concurrency` workers; requests per second."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 300)
    return count / (time.perf_counter() - started)


async def measure(
    url: str, token: str, context: ssl.SSLContext, n: int, c: int
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(ssl=context, limit=c + 2)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as http:
        async with http.post(CM, json={"metadata": {"name": "bench"}, "data": {"n": "0"}}) as r:
            assert r.status == 201, await r.text()

        async def get(_: int) -> None:
            async with http.get(f"{CM}/bench") as r:
                assert r.status == 200
                await r.read()

        async def patch(i: int) -> None:
            body = json.dumps({"data": {"n": str(i)}})
            async with http.patch(
                f"{CM}/bench",
                data=body,
                headers={"Content-Type": "application/merge-patch+json"},
            ) as r:
                assert r.status == 200
                await r.read()

        await timed(200, c, get)  # warm-up
        results = {"get": await timed(n, c, get), "merge-patch": await timed(n, c, patch)}

        async with http.get(f"{CM}/bench") as r:
            since = (await r.json())["metadata"]["resourceVersion"]
        received = 0
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal received
            params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "300"}
            async with http.get(CM, params=params, timeout=aiohttp.ClientTimeout(total=300)) as r:
                async for line in r.content:
                    if json.loads(line)["type"] == "MODIFIED":
                        received += 1
                        if received == n:
                            done.set()
                            return

        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        await timed(n, c, patch)
        await asyncio.wait_for(done.wait(), 300)
        results["watch events delivered"] = n / (time.perf_counter() - started)
        await watcher
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--write", help="append the results as Markdown to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="koos-bench-") as tmp:
        proc, url, token, context = start_sandbox(Path(tmp))
        try:
            results = asyncio.run(measure(url, token, context, args.requests, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    rows = "\n".join(f"| {name} | {rate:,.0f} |" for name, rate in results.items())
    report = (
        f"\n## {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n\n"
        f"`{' '.join(['python', *sys.argv])}` — {args.requests} requests per row, "
        f"{args.concurrency} concurrent connections, HTTPS on loopback\n\n"
        f"| what | per second |\n| --- | ---: |\n{rows}\n"
    )
    print(report)
    if args.write:
        with open(args.write, "a") as out:
            out.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
