#!/usr/bin/env python
"""Benchmark: does the Kubernetes API test double slow down as requests accumulate?

Starts one emulated cluster (the CLI, as a subprocess, unless --in-process),
then issues 10,000+ mixed ConfigMap requests over one keep-alive connection:
create, get, merge patch, list (namespace) and delete, over a sliding window of
live objects so the store size stays constant. Prints the median latency of
requests 1-100 and 9,901-10,000 and their ratio (target <= 1.5): a growing
request log or event history would show up as a rising ratio.

    .venv/bin/python benchmarks/bench_kubeapi_double.py [--requests 10500] [--in-process]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WINDOW = 50  # live ConfigMaps at any time
NS_PATH = "/api/v1/namespaces/default/configmaps"


def _start(state_dir: str, in_process: bool):
    if in_process:
        sys.path.insert(0, str(REPO))
        from tests.doubles.kubeapi_double import start_clusters

        handle = start_clusters(["bench"], state_dir)
        return handle["bench"].port, handle.stop
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, str(REPO / "tests/doubles/kubeapi_double.py"), "--state-dir", state_dir,
         "--cluster", "bench"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    info = Path(state_dir) / "clusters.json"
    deadline = time.monotonic() + 30
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("kubeapi double did not start")
        time.sleep(0.05)

    def stop():
        proc.terminate()
        proc.wait(timeout=10)

    return json.loads(info.read_text())["bench"]["port"], stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_500)
    parser.add_argument("--in-process", action="store_true", help="run the double in this process (threads)")
    args = parser.parse_args()
    if args.requests < 10_000:
        parser.error("--requests must be at least 10000")

    with tempfile.TemporaryDirectory(prefix="bench-kubeapi-") as state_dir:
        port, stop = _start(state_dir, args.in_process)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}

        def call(method, path, body=None, ctype="application/json"):
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={**headers, "Content-Type": ctype})
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 400:
                raise SystemExit(f"{method} {path} -> {resp.status}")

        def cm(i):
            return {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"cm-{i}", "labels": {"bench": "yes", "slot": str(i % 7)}},
                    "data": {"i": str(i), "payload": "x" * 200}}

        try:
            for i in range(-WINDOW, 0):  # warm the store to its steady-state size (not timed)
                call("POST", NS_PATH, cm(i))
            latencies = []
            i = 0
            while len(latencies) < args.requests:
                ops = [
                    ("POST", NS_PATH, cm(i), "application/json"),
                    ("GET", f"{NS_PATH}/cm-{i}", None, None),
                    ("PATCH", f"{NS_PATH}/cm-{i}", {"data": {"patched": str(i)}}, "application/merge-patch+json"),
                    ("GET", f"{NS_PATH}?labelSelector=bench%3Dyes", None, None),
                    ("DELETE", f"{NS_PATH}/cm-{i - WINDOW}", None, None),
                ]
                for method, path, body, ctype in ops:
                    t0 = time.perf_counter()
                    call(method, path, body, ctype or "application/json")
                    latencies.append(time.perf_counter() - t0)
                i += 1
        finally:
            conn.close()
            stop()

    first = statistics.median(latencies[0:100]) * 1000
    last = statistics.median(latencies[9900:10000]) * 1000
    ratio = last / first
    print(f"requests: {len(latencies)} (create/get/patch/list/delete ConfigMaps, window {WINDOW}, keep-alive)")
    print(f"median latency requests 1-100:        {first:.3f} ms")
    print(f"median latency requests 9901-10000:   {last:.3f} ms")
    print(f"median latency requests 101-1100:     {statistics.median(latencies[100:1100]) * 1000:.3f} ms "
          f"vs 9001-10000: {statistics.median(latencies[9000:10000]) * 1000:.3f} ms (less noisy)")
    print(f"median latency all:                   {statistics.median(latencies) * 1000:.3f} ms")
    print(f"ratio (target <= 1.5):                {ratio:.2f}")
    print(f"pid {os.getpid()} done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
