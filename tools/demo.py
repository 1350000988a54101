#!/usr/bin/env python
"""``make demo``: run the collection's main job on the embedded default, on this machine.

Every server it needs is started here on loopback and stopped on exit; the pids
are kept in ``.demo/pids.json`` so ``make demo-stop`` (``tools/demo.py --stop``)
can stop them after an interruption. The summary says which parts ran for real
and which were stand-ins.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.playbook import ensure_collection_tree, run_playbook  # noqa: E402

STATE = ROOT / ".demo"
PIDS = STATE / "pids.json"


# --------------------------------------------------------------------------- process bookkeeping
class Tracker:
    """Remembers every process group the demo started, on disk, and stops them."""

    def __init__(self):
        self.stoppers: list = []
        STATE.mkdir(exist_ok=True)

    def add(self, name: str, pid: int | None, stop) -> None:
        self.stoppers.append((name, stop))
        if pid:
            pids = json.loads(PIDS.read_text()) if PIDS.exists() else {}
            pids[name] = pid
            PIDS.write_text(json.dumps(pids))

    def stop_all(self) -> None:
        while self.stoppers:
            name, stop = self.stoppers.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"  ! could not stop {name}: {exc}")
        PIDS.unlink(missing_ok=True)


def stop_leftovers() -> int:
    """Kill the process groups an interrupted demo left behind."""
    if not PIDS.exists():
        print("nothing to stop")
        return 0
    for name, pid in json.loads(PIDS.read_text()).items():
        try:
            os.killpg(pid, signal.SIGTERM)
            print(f"stopped {name} (pid {pid})")
        except ProcessLookupError:
            print(f"{name} (pid {pid}) was not running")
    PIDS.unlink(missing_ok=True)
    return 0


# --------------------------------------------------------------------------- output
class Report:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []
        self.t0 = time.monotonic()

    def step(self, title: str) -> None:
        print(f"\n[{time.monotonic() - self.t0:6.1f}s] == {title}", flush=True)

    def info(self, text: str) -> None:
        print(f"           {text}", flush=True)

    def add(self, part: str, how: str, outcome: str) -> None:
        self.rows.append((part, how, outcome))

    def summary(self) -> None:
        print("\n" + "=" * 100)
        print(f"NGA4M demo summary ({time.monotonic() - self.t0:.1f}s)")
        print("=" * 100)
        width = max(len(r[0]) for r in self.rows) if self.rows else 10
        for part, how, outcome in self.rows:
            print(f"{part:<{width}}  {how:<11}  {outcome}")
        print("REAL = the actual software ran here; STAND-IN = a test double named as one.")


def check(cond: bool, message: str) -> None:
    if not cond:
        raise SystemExit(f"demo failed: {message}")


def playbook(name: str, extra_vars: dict):
    run = run_playbook(ROOT / "tools" / "demo" / name, extra_vars=extra_vars)
    if run.rc != 0:
        print(run.stdout[-6000:])
        print(run.stderr[-3000:])
        raise SystemExit(f"demo failed: ansible-playbook tools/demo/{name} exited {run.rc}")
    return run


# --------------------------------------------------------------------------- steps
def step_federation(rep: Report, tracker: Tracker, work: Path) -> None:
    from tests.helpers.prometheus import PROMETHEUS, LocalExporter, PrometheusServer, promtool_check_config, scrape_config_for

    check(Path(PROMETHEUS).exists(), "Debian's prometheus is missing: apt-get install --no-install-recommends prometheus")
    rep.step("Secondary clusters: model-server exporters scraped by one Prometheus each")
    clusters = []
    for sc in ("sc1", "sc2"):
        exporter = LocalExporter({"models": [f"iris-{sc}"], "kube-system": ["coredns"]}).start()
        tracker.add(f"{sc}-exporter", None, exporter.stop)
        prom = PrometheusServer(scrape_config_for(exporter, external_labels={"cluster": sc}), work, name=f"{sc}-prometheus").start()
        tracker.add(f"{sc}-prometheus", prom.process.pid, prom.stop)
        rep.info(f"{sc}: Prometheus {prom.url} scraping {exporter.address} (namespaces models, kube-system)")
        clusters.append({"name": sc, "url": prom.url})

    rep.step("ansible-playbook: nga4m.platform.prometheus_federation renders the PC's federation jobs")
    dest = work / "pc-prometheus.yml"
    run = playbook("federation.yml", {"demo_clusters": clusters, "demo_dest": str(dest)})
    res = run.result("Render one federate job per secondary cluster")
    rep.info(f"changed={res['changed']} jobs={[j['job_name'] for j in res['scrape_configs']]}")
    again = playbook("federation.yml", {"demo_clusters": clusters, "demo_dest": str(dest)})
    rerun_changed = again.result("Render one federate job per secondary cluster")["changed"]
    rep.info(f"re-run changed={rerun_changed}")
    checked = promtool_check_config(dest)
    check(checked.returncode == 0, f"promtool check config failed: {checked.stdout}{checked.stderr}")
    rep.info("promtool check config: SUCCESS")

    rep.step("Primary cluster Prometheus federating both SCs")
    pc = PrometheusServer(dest, work, name="pc-prometheus").start()
    tracker.add("pc-prometheus", pc.process.pid, pc.stop)
    metric = "nga4m_test_model_up"
    deadline = time.monotonic() + 60
    seen: list = []
    while time.monotonic() < deadline:
        series = pc.query(f"count by (cluster, namespace, model) ({metric})")
        seen = sorted((s["metric"].get("cluster"), s["metric"].get("namespace"), s["metric"].get("model")) for s in series)
        if {row[0] for row in seen} >= {"sc1", "sc2"}:
            break
        time.sleep(0.5)
    for cluster, namespace, model in seen:
        rep.info(f'{metric}{{cluster="{cluster}", namespace="{namespace}", model="{model}"}}')
    clusters_seen = {row[0] for row in seen}
    check(clusters_seen == {"sc1", "sc2"}, f"expected series from sc1 and sc2 on the PC, got {seen}")
    check(all(row[1] == "models" for row in seen), f"a non-matching namespace was federated: {seen}")
    rep.add("Prometheus federation (PC <- sc1, sc2)", "REAL", f"{len(seen)} federated series with cluster label; kube-system filtered out")
    rep.add("prometheus_federation module", "REAL", f"2 jobs rendered, promtool OK, re-run changed={rerun_changed}")


def step_publish(rep: Report, tracker: Tracker, work: Path) -> None:
    from tests.helpers.onnx_models import IRIS_INPUT, IRIS_SAMPLES, iris_classifier, run as onnx_run
    from tests.helpers.s3 import MotoS3

    rep.step("Shared object storage: an S3 server (moto, server mode) on loopback")
    s3 = MotoS3(work)
    tracker.add("s3-server", s3.proc.pid, s3.stop)
    rep.info(f"S3 endpoint {s3.url}")

    rep.step("Build a small ONNX iris classifier and publish it in Triton layout (ansible-playbook)")
    model = iris_classifier(work / "iris.onnx")
    opts = {"endpoint": s3.endpoint, "region": s3.region, "access_key": s3.access_key, "secret_key": s3.secret_key, "bucket": "nga4m"}
    first = playbook("publish.yml", {"demo_model_file": str(model), "demo_s3": opts}).result("Publish the iris model, version 1")
    second = playbook("publish.yml", {"demo_model_file": str(model), "demo_s3": opts}).result("Publish the iris model, version 1")
    rep.info(f"first run: changed={first['changed']} uploaded={first['uploaded']}")
    rep.info(f"second run: changed={second['changed']} uploaded={second['uploaded']}")
    rep.info(f"storageUri for KServe: {first['storage_uri']}")
    keys = s3.keys("nga4m")
    for key in keys:
        rep.info(f"s3://nga4m/{key}")
    check(first["changed"] and not second["changed"] and not second["uploaded"], "publishing is not idempotent")
    print("\n" + first["config"])

    rep.step("Read the model back from object storage and run it with onnxruntime")
    local = work / "downloaded.onnx"
    s3.client().fget_object("nga4m", "triton/iris/1/model.onnx", str(local))
    outputs = onnx_run(local, {IRIS_INPUT: IRIS_SAMPLES})
    labels = [int(v) for v in outputs[1].reshape(-1)]
    rep.info(f"classes for {[[round(float(x), 1) for x in row] for row in IRIS_SAMPLES]}: {labels} (setosa, versicolor, virginica)")
    check(labels == [0, 1, 2], f"unexpected classes {labels}")
    rep.add("triton_model_repository module", "REAL", f"{len(keys)} objects in Triton layout; re-run changed=False, 0 uploads")
    rep.add("object storage (S3 API)", "REAL", "moto S3 server (server mode) on loopback, driven by the minio SDK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="stop what an interrupted demo left running")
    args = parser.parse_args()
    if args.stop:
        return stop_leftovers()

    if PIDS.exists():
        stop_leftovers()
    ensure_collection_tree()
    rep = Report()
    tracker = Tracker()
    atexit.register(tracker.stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="nga4m-demo-") as tmp:
        work = Path(tmp)
        try:
            step_federation(rep, tracker, work)
            step_publish(rep, tracker, work)
        finally:
            rep.step("Stopping everything the demo started")
            tracker.stop_all()
    rep.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
