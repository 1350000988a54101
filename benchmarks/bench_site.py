#!/usr/bin/env python
"""Benchmark: site.yml on the emulated bed (TEST DOUBLES) with 1 vs 8 secondary clusters.

For each latency model and size it starts a fresh bed (``tools/bed start``
with clusters pc and sc1..scN: the Kubernetes API double, the helm double's
state dir), writes an inventory of the inventories/demo shape into a temporary
directory (pc1 tuned over "SSH" on one local stand-in node, every SC with the
sysctl DaemonSet), runs ``site.yml`` twice (converge, then the no-change
re-run) with ``--forks N+2`` and prints the wall times, the changed counts,
the helm revisions each run recorded, and the ratios:

    8 SC converge / 1 SC converge   target <= 2.5 (secondaries converge in parallel)
    re-run / first converge         target <= 0.6 (per size)

Latency models (``--models``):

* ``none``: every workload is ready the moment it is written, as in the
  tests. Nothing waits, so both runs cost what their module processes cost; a
  no-change re-run starts as many of them as a converge (it reads and compares
  every object), so its ratio is about 1 by construction.
* ``rollouts`` (the re-run target's measure): the doubles' controller latency
  model. A Deployment, StatefulSet, DaemonSet or Job reports ready
  ``--rollout-seconds`` (default 5) after it is created or its spec changes,
  and a ``helm upgrade --install --wait`` that records a new revision is
  pending ``--helm-wait-seconds`` (default 10). Both defaults are below what a
  real cluster takes (image pulls, probes, a chart's --wait). A re-run that
  changes nothing starts no rollout and no helm upgrade, so it waits for
  nothing; one that re-rolled workloads or upgraded releases would wait as
  long as the converge.

The times include ansible-playbook start-up. They are printed, never asserted.

    .venv/bin/python benchmarks/bench_site.py [--sizes 1,8] [--models none,rollouts]
        [--rollout-seconds 5] [--helm-wait-seconds 10]
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

from tests.doubles.helm_double import recorded  # noqa: E402
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


def helm_revisions(state: Path) -> int:
    """Revisions the helm double has recorded on every cluster (each install or upgrade adds one)."""
    helm_state = state / "helm"
    return sum(r["revision"] for r in recorded.releases(helm_state)) if helm_state.is_dir() else 0


def measure(n_sc: int, rollout_seconds: float, helm_wait_seconds: float) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix=f"nga4m-bench-site-{n_sc}-") as tmp:
        state = Path(tmp) / "bed"
        clusters = ",".join(["pc"] + [f"sc{i}" for i in range(1, n_sc + 1)])
        # the helm double's wait model comes with the rest of its environment below
        subprocess.run([str(BED), "start", "--clusters", clusters, "--state-dir", str(state),  # noqa: S603
                        "--rollout-seconds", str(rollout_seconds)], check=True, capture_output=True)
        try:
            invdir = Path(tmp) / "inventory"
            shutil.copytree(REPO / "inventories" / "demo" / "group_vars", invdir / "group_vars")
            inv = invdir / "hosts.yml"
            inv.write_text(yaml.safe_dump(inventory(state, n_sc)))
            env = {"HELM_DOUBLE_STATE_DIR": str(state / "helm"), "NGA4M_BED_DIR": str(state),
                   "HELM_DOUBLE_WAIT_SECONDS": str(helm_wait_seconds),
                   "PATH": os.pathsep.join([str(HELM_DOUBLE), str(Path(sys.executable).parent), os.environ["PATH"]])}
            runs = []
            for label in ("converge", "re-run"):
                before = helm_revisions(state)
                start = time.monotonic()
                run = run_playbook(REPO / "site.yml", inventory=inv, env=env, args=["--forks", str(n_sc + 2), "-e", f"nga4m_demo_repo_dir={REPO}"])
                took = time.monotonic() - start
                if run.rc != 0:
                    raise SystemExit(f"{n_sc} SC {label} failed (rc {run.rc}):\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
                runs.append({"seconds": took, "changed": run.changed_total(), "helm": helm_revisions(state) - before})
                print(f"  {n_sc} SC {label:<8} {took:6.1f} s  changed={runs[-1]['changed']}  helm revisions={runs[-1]['helm']}",
                      flush=True)
            return runs
        finally:
            subprocess.run([str(BED), "stop", "--state-dir", str(state)], check=False, capture_output=True)  # noqa: S603


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,8", help="numbers of secondary clusters (first is the baseline)")
    parser.add_argument("--models", default="none,rollouts", help="latency models to run: none, rollouts (see above)")
    parser.add_argument("--rollout-seconds", type=float, default=5.0, help="rollouts model: seconds per workload rollout")
    parser.add_argument("--helm-wait-seconds", type=float, default=10.0, help="rollouts model: seconds per helm --wait upgrade")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    models = {"none": (0.0, 0.0), "rollouts": (args.rollout_seconds, args.helm_wait_seconds)}
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(models))
    if unknown or not chosen:
        parser.error(f"--models takes a comma-separated list of {', '.join(models)}; got {args.models!r}")
    print(f"site.yml on the emulated bed (test doubles), 1 PC + N SC, {os.cpu_count()} CPUs")
    results = {}
    for model in chosen:
        rollout, helm_wait = models[model]
        print(f"model {model}: rollout {rollout:g} s, helm --wait {helm_wait:g} s", flush=True)
        results[model] = {n: measure(n, rollout, helm_wait) for n in sizes}
    print()
    print(f"{'model':<9} {'SCs':>3} {'converge':>9} {'re-run':>8} {'re-run/converge':>16} {'changed':>9} {'helm revisions':>15}")
    for model, by_size in results.items():
        for n, (first, rerun) in by_size.items():
            print(f"{model:<9} {n:>3} {first['seconds']:8.1f}s {rerun['seconds']:7.1f}s {rerun['seconds'] / first['seconds']:16.2f}"
                  f" {first['changed']:>4}/{rerun['changed']:<4} {first['helm']:>7}/{rerun['helm']:<7}")
    print()
    for model, by_size in results.items():
        base = by_size[sizes[0]][0]["seconds"]
        for n in sizes[1:]:
            print(f"{model}: converge {n} SC / {sizes[0]} SC = {by_size[n][0]['seconds'] / base:.2f} (target <= 2.5)")
        for n in sizes:
            first, rerun = by_size[n]
            print(f"{model}: {n} SC re-run / converge = {rerun['seconds'] / first['seconds']:.2f} (target <= 0.6"
                  f"{'' if model == 'rollouts' else '; nothing waits in this model'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
