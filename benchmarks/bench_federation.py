"""Benchmark nga4m.platform federation rendering for 1, 100 and 1,000 secondary clusters.

Usage: .venv/bin/python benchmarks/bench_federation.py [--target SECONDS] [--repeat N]

Times what the module does for ``dest`` (Helm values) plus ``secret``, except
Ansible's own overhead: validation + rendering, YAML serialisation (once,
shared by the file and the Secret) and the Secret. Prints the best
of N runs and its ratio to the target (default 1 s); exits 1 when a size is
over the target.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.helpers.playbook import ensure_collection_tree  # noqa: E402

sys.path.insert(0, str(ensure_collection_tree()))

from ansible_collections.nga4m.platform.plugins.module_utils import federation  # noqa: E402


def make_clusters(count: int) -> list[dict]:
    return [
        {
            "name": f"sc{i:05d}",
            "url": f"https://prometheus.sc{i}.example.com/prometheus",
            "namespaces": ["models", f"team-{i % 13}"],
            "match": ['{__name__=~"nv_inference_.*"}'],
            "ca_file": "/etc/prometheus/secrets/sc-ca/ca.crt",
            "username": "federate",
            "password_file": f"/etc/prometheus/secrets/sc{i}-federate/password",
            "labels": {"region": f"r{i % 3}"},
        }
        for i in reversed(range(count))
    ]


def render_all(clusters: list[dict]) -> tuple[dict, int]:
    """One module-equivalent run; returns per-phase seconds and the YAML size."""
    times = {}
    cpu_started = time.process_time()
    started = time.perf_counter()
    jobs = federation.render_scrape_configs(clusters, scrape_interval="30s")
    times["render"] = time.perf_counter() - started
    mark = time.perf_counter()
    list_text = federation.to_yaml(jobs, header=False)
    text = federation.render_file_text(jobs, "helm_values", list_text)
    times["yaml"] = time.perf_counter() - mark
    mark = time.perf_counter()
    federation.render_secret(jobs, list_text=list_text)
    times["secret"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    times["cpu"] = time.process_time() - cpu_started
    return times, len(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=1.0, help="seconds allowed per size (default 1.0)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size, best kept (default 3)")
    args = parser.parse_args()

    over = False
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"PyYAML with libyaml: {federation.yaml.__with_libyaml__}; CPUs: {os.cpu_count()}; load average (1 min): {load:.2f}")
    header = f"{'clusters':>9} {'render s':>9} {'yaml s':>8} {'secret s':>9} {'total s':>8} {'cpu s':>7} {'per SC ms':>10} {'bytes':>9} {'ratio':>6}"
    print(header)
    for count in (1, 100, 1000):
        clusters = make_clusters(count)
        best, size = None, 0
        for dummy in range(args.repeat):
            times, size = render_all(clusters)
            if best is None or times["total"] < best["total"]:
                best = times
        ratio = best["total"] / args.target
        over = over or ratio > 1
        print(
            f"{count:>9} {best['render']:>9.4f} {best['yaml']:>8.4f} {best['secret']:>9.4f} {best['total']:>8.4f} {best['cpu']:>7.4f} "
            f"{best['total'] * 1000 / count:>10.3f} {size:>9} {ratio:>6.3f}{'  OVER TARGET' if ratio > 1 else ''}"
        )
    print(f"target: {args.target:.2f} s per size (validate + render + Helm values YAML + Secret); ratio = best wall-clock total / target")
    if load > (os.cpu_count() or 1):
        print("note: the machine is busier than its CPU count; wall-clock times are inflated (compare the cpu column)")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
