#!/usr/bin/env python
"""Benchmark: the local bed's cost, and site.yml on it with 1 vs 8 secondary clusters.

Everything runs on the real bed (tests/helpers/bed.py): real etcd, kube-apiserver,
kube-controller-manager and kube-scheduler per cluster, kwok simulating nodes and pods, the
real helm with the fixture charts, MinIO. Printed, never asserted:

1. bed start: ``tools/bed start`` of 3 clusters (pc, sc1, sc2), wall time, and the resident
   memory of each cluster's processes (API server, controller manager, scheduler, kwok) and of
   the shared etcd, measured after a site.yml converge;
2. site.yml on a fresh bed with 1 PC + 1 SC and with 1 PC + N SC (``--forks N+2``, an
   inventory of the inventories/demo shape: pc1 tuned over "SSH" on one local stand-in node,
   every SC with the sysctl DaemonSet): converge, then the no-change re-run, with the changed
   counts and the helm revisions each run made (from the real ``helm list``), and the ratios:

       N SC converge / 1 SC converge   target <= 2.5 (secondaries converge in parallel)
       re-run / first converge         target <= 0.6 (per size)

Pods become Ready ``--pod-ready-seconds`` (default 5) after they are created (kwok's stage
delay; a real node pulls images and runs probes for longer), so every rollout and every
``helm --wait`` costs real controller time: the Deployment, ReplicaSet, DaemonSet, Job and
StatefulSet controllers and the scheduler do the work, the waits poll the real API. A re-run
that changes nothing starts no rollout and no helm upgrade, so it waits for nothing; one that
re-rolled a workload or upgraded a release would wait as long as the converge.

    .venv/bin/python benchmarks/bench_site.py [--sizes 1,8] [--pod-ready-seconds 5] [--skip-bed-start]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.bed import bed_env, read_state  # noqa: E402
from tests.helpers.kubebed import bin_dir  # noqa: E402
from tests.helpers.playbook import run_playbook  # noqa: E402

BED = REPO / "tools" / "bed"


def inventory(state: Path, n_sc: int) -> dict:
    """Hosts of the inventories/demo shape; its group_vars are copied beside this file."""
    def cluster(name: str, context: str, method: str, **extra) -> dict:
        return {"cluster_name": name, "kubeconfig": str(state / f"{context}.kubeconfig"), "context": context,
                "sysctl_tuning_method": method, **extra}

    return {
        "all": {
            "vars": {"ansible_python_interpreter": sys.executable, "nga4m_namespace": "nga4m-system"},
            "children": {
                "pc": {"vars": {"ansible_connection": "local"},
                       "hosts": {"pc1": cluster("pc1", "pc", "ssh", cluster_node_group="pc1_nodes")}},
                "sc": {"vars": {"ansible_connection": "local"},
                       "hosts": {f"sc{i}": cluster(f"sc{i}", f"sc{i}", "daemonset",
                                                   kube_prometheus_stack_prometheus_node_port=30100 + i,
                                                   kube_prometheus_stack_federation_url=f"http://127.0.0.1:{30100 + i}")
                                 for i in range(1, n_sc + 1)}},
                "pc_nodes": {"children": {"pc1_nodes": {"hosts": {"pc1-node1": {
                    "ansible_connection": "local",
                    "sysctl_tuning_file": str(state / "nodes" / "pc1-node1" / "90-nga4m.conf"),
                    "sysctl_tuning_reload": False,
                }}}}},
            },
        }
    }


def helm_revisions(state: Path) -> int:
    """Revisions of every helm release on every cluster of the bed (each install or upgrade adds one)."""
    total = 0
    env = {**os.environ, **bed_env(state)}
    for info in read_state(state).get("clusters", {}).values():
        out = subprocess.run([str(bin_dir() / "helm"), "--kubeconfig", info["kubeconfig"], "list", "-A", "--all", "-o", "json"],  # noqa: S603
                             capture_output=True, text=True, env=env, check=True)
        total += sum(int(r["revision"]) for r in json.loads(out.stdout or "[]"))
    return total


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def start_bed(state: Path, clusters: list[str], pod_ready: float) -> float:
    t0 = time.monotonic()
    subprocess.run([str(BED), "start", "--clusters", ",".join(clusters), "--state-dir", str(state),  # noqa: S603
                    "--pod-ready-seconds", str(pod_ready)], check=True, capture_output=True)
    return time.monotonic() - t0


def measure(n_sc: int, pod_ready: float, memory: dict | None = None) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix=f"nga4m-bench-site-{n_sc}-") as tmp:
        state = Path(tmp) / "bed"
        clusters = ["pc"] + [f"sc{i}" for i in range(1, n_sc + 1)]
        started = start_bed(state, clusters, pod_ready)
        print(f"  {n_sc} SC: bed of {len(clusters)} clusters started in {started:.1f} s", flush=True)
        try:
            invdir = Path(tmp) / "inventory"
            shutil.copytree(REPO / "inventories" / "demo" / "group_vars", invdir / "group_vars")
            inv = invdir / "hosts.yml"
            inv.write_text(yaml.safe_dump(inventory(state, n_sc)))
            env = bed_env(state)
            runs = []
            for label in ("converge", "re-run"):
                before = helm_revisions(state)
                start = time.monotonic()
                run = run_playbook(REPO / "site.yml", inventory=inv, env=env, timeout=3600,
                                   args=["--forks", str(n_sc + 2), "-e", f"nga4m_demo_repo_dir={REPO}"])
                took = time.monotonic() - start
                if run.rc != 0:
                    raise SystemExit(f"{n_sc} SC {label} failed (rc {run.rc}):\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
                runs.append({"seconds": took, "changed": run.changed_total(), "helm": helm_revisions(state) - before})
                print(f"  {n_sc} SC {label:<8} {took:6.1f} s  changed={runs[-1]['changed']}  helm revisions={runs[-1]['helm']}",
                      flush=True)
            if memory is not None:
                bed = read_state(state)
                memory["etcd"] = rss_mb(bed["pids"]["etcd"])
                memory["clusters"] = {name: {role: rss_mb(pid) for role, pid in info["pids"].items()}
                                      for name, info in bed["clusters"].items()}
            return runs
        finally:
            subprocess.run([str(BED), "stop", "--state-dir", str(state)], check=False, capture_output=True)  # noqa: S603


def bench_bed_start(pod_ready: float) -> float:
    with tempfile.TemporaryDirectory(prefix="nga4m-bench-bed-") as tmp:
        state = Path(tmp) / "bed"
        try:
            return start_bed(state, ["pc", "sc1", "sc2"], pod_ready)
        finally:
            subprocess.run([str(BED), "stop", "--state-dir", str(state)], check=False, capture_output=True)  # noqa: S603


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,8", help="numbers of secondary clusters (first is the baseline)")
    parser.add_argument("--pod-ready-seconds", type=float, default=5.0, help="kwok: seconds from a pod's creation to Ready")
    parser.add_argument("--skip-bed-start", action="store_true", help="do not time a separate 3-cluster bed start")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not sizes or any(n < 1 for n in sizes):
        parser.error(f"--sizes takes a comma-separated list of numbers >= 1; got {args.sizes!r}")
    bin_dir(build=True)
    print(f"local bed: real control planes (kwok nodes, pods Ready after {args.pod_ready_seconds:g} s), {os.cpu_count()} CPUs")
    if not args.skip_bed_start:
        print(f"bed start, 3 clusters (pc, sc1, sc2) + chart repository + MinIO: {bench_bed_start(args.pod_ready_seconds):.1f} s")
    memory: dict = {}
    results = {n: measure(n, args.pod_ready_seconds, memory if n == sizes[0] else None) for n in sizes}
    print()
    print(f"memory after the {sizes[0]} SC converge (RSS, MB): etcd (shared) {memory['etcd']:.0f}")
    for name, roles in memory["clusters"].items():
        print(f"  {name:<4} total {sum(roles.values()):5.0f}  " + "  ".join(f"{role} {mb:.0f}" for role, mb in roles.items()))
    print()
    print(f"{'SCs':>3} {'converge':>9} {'re-run':>8} {'re-run/converge':>16} {'changed':>9} {'helm revisions':>15}")
    for n, (first, rerun) in results.items():
        print(f"{n:>3} {first['seconds']:8.1f}s {rerun['seconds']:7.1f}s {rerun['seconds'] / first['seconds']:16.2f}"
              f" {first['changed']:>4}/{rerun['changed']:<4} {first['helm']:>7}/{rerun['helm']:<7}")
    print()
    base = results[sizes[0]][0]["seconds"]
    for n in sizes[1:]:
        print(f"converge {n} SC / {sizes[0]} SC = {results[n][0]['seconds'] / base:.2f} (target <= 2.5)")
    for n in sizes:
        first, rerun = results[n]
        print(f"{n} SC re-run / converge = {rerun['seconds'] / first['seconds']:.2f} (target <= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
