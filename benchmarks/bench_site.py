#!/usr/bin/env python
"""Benchmark: site.yml on the emulated bed (TEST DOUBLES) with 1 vs 8 secondary clusters.

For each size it starts a fresh bed (``tools/bed start`` with clusters pc and
sc1..scN: the Kubernetes API double, the helm double's state dir), writes an
inventory of the inventories/demo shape into a temporary directory (pc1 tuned
over "SSH" on one local stand-in node, every SC with the sysctl DaemonSet),
runs ``site.yml`` twice (converge, then the no-change re-run) with
``--forks N+2`` and prints the wall times and ratios:

    8 SC converge / 1 SC converge   target <= 2.5 (secondaries converge in parallel)
    re-run / first converge         target <= 0.6 (per size)

The times include ansible-playbook start-up. They are printed, never asserted.

    .venv/bin/python benchmarks/bench_site.py [--sizes 1,8]
"""

from __future__ import annotations

import argparse
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

from tests.helpers.playbook import run_playbook  # noqa: E402

BED = REPO / "tools" / "bed"
HELM_DOUBLE = REPO / "tests" / "doubles" / "helm_double"


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


def measure(n_sc: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix=f"nga4m-bench-site-{n_sc}-") as tmp:
        state = Path(tmp) / "bed"
        clusters = ",".join(["pc"] + [f"sc{i}" for i in range(1, n_sc + 1)])
        subprocess.run([str(BED), "start", "--clusters", clusters, "--state-dir", str(state)],  # noqa: S603
                       check=True, capture_output=True)
        try:
            invdir = Path(tmp) / "inventory"
            shutil.copytree(REPO / "inventories" / "demo" / "group_vars", invdir / "group_vars")
            inv = invdir / "hosts.yml"
            inv.write_text(yaml.safe_dump(inventory(state, n_sc)))
            env = {"HELM_DOUBLE_STATE_DIR": str(state / "helm"), "NGA4M_BED_DIR": str(state),
                   "PATH": os.pathsep.join([str(HELM_DOUBLE), str(Path(sys.executable).parent), os.environ["PATH"]])}
            times = []
            for label in ("converge", "re-run"):
                start = time.monotonic()
                run = run_playbook(REPO / "site.yml", inventory=inv, env=env, args=["--forks", str(n_sc + 2), "-e", f"nga4m_demo_repo_dir={REPO}"])
                times.append(time.monotonic() - start)
                if run.rc != 0:
                    raise SystemExit(f"{n_sc} SC {label} failed (rc {run.rc}):\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
                print(f"  {n_sc} SC {label:<8} {times[-1]:6.1f} s  changed={run.changed_total()}", flush=True)
            return times[0], times[1]
        finally:
            subprocess.run([str(BED), "stop", "--state-dir", str(state)], check=False, capture_output=True)  # noqa: S603


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,8", help="numbers of secondary clusters (first is the baseline)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"site.yml on the emulated bed, 1 PC + N SC, {os.cpu_count()} CPUs")
    results = {n: measure(n) for n in sizes}
    base = results[sizes[0]][0]
    for n, (first, rerun) in results.items():
        print(f"1 PC + {n} SC: converge {first:.1f} s, re-run {rerun:.1f} s, re-run/converge {rerun / first:.2f} (target <= 0.6)")
    for n in sizes[1:]:
        print(f"converge {n} SC / {sizes[0]} SC: {results[n][0] / base:.2f} (target <= 2.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
