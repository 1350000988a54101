#!/usr/bin/env python
"""``make demo``: the whole platform flow on one machine, on the embedded default.

1. the local bed (``tools/bed``): real Kubernetes control planes pc, sc1, sc2 (kwok
   simulates their nodes and pods), real helm with the fixture charts, MinIO as the
   shared object storage; MLflow on MariaDB, one Prometheus per SC;
2. ``ansible-playbook site.yml -i inventories/demo`` (then again: changed=0);
3. the PC Prometheus, started with the federation jobs the PC's
   kube-prometheus-stack release received;
4. the iris pipeline with the KFP local runner: train, ONNX, publish in Triton
   layout, InferenceService on sc1 (reconciled by KServe's real controller), run logged
   to MLflow;
5. the real Triton Inference Server (nvidia-pytriton's ``tritonserver`` with NGA4M's
   onnxruntime Python-based backend, ``examples/iris/serve_triton.py``) reading the
   published repository from the bucket, inference requests with ``examples/iris/infer.py``;
6. Triton's metrics federated on the PC Prometheus with ``cluster="sc1"``, and every
   Triton panel of the served-models dashboard (read from the ConfigMap the
   kube_prometheus_stack role applied on pc) returning data there.

Everything started is stopped on exit; pids are kept in ``.demo/pids.json`` so
``make demo-stop`` (``tools/demo.py --stop``) cleans up after an interruption.
The summary says which parts ran for real and which were stand-ins.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.bed import bed_env  # noqa: E402
from tests.helpers.kubebed import bin_dir, pins  # noqa: E402
from tests.helpers.playbook import ensure_collection_tree, run_playbook  # noqa: E402
from tests.helpers.procs import ManagedProcess, free_port, wait_http  # noqa: E402

STATE = ROOT / ".demo"
PIDS = STATE / "pids.json"
BED = STATE / "bed"
IRIS = ROOT / "examples" / "iris"
BUCKET = "nga4m"
PREFIX = "models/triton"
MODEL_METRIC = "nv_inference_count"


# --------------------------------------------------------------------------- bookkeeping
class Tracker:
    """Every process group the demo started, remembered on disk, stopped in reverse order."""

    def __init__(self):
        self.stoppers: list = []
        STATE.mkdir(exist_ok=True)

    def add(self, name: str, pid: int | None, stop) -> None:
        """Remember ``stop`` for ``name``; ``pid`` (a process group id) also goes to pids.json for --stop."""
        self.stoppers.append((name, stop))
        if pid:
            pids = json.loads(PIDS.read_text()) if PIDS.exists() else {}
            pids[name] = pid
            PIDS.write_text(json.dumps(pids))

    def forget(self, name: str) -> None:
        """Drop ``name`` (already stopped) from the stoppers and pids.json."""
        self.stoppers = [(n, stop) for n, stop in self.stoppers if n != name]
        if PIDS.exists():
            pids = json.loads(PIDS.read_text())
            pids.pop(name, None)
            PIDS.write_text(json.dumps(pids))

    def stop_all(self) -> None:
        while self.stoppers:
            name, stop = self.stoppers.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"  ! could not stop {name}: {exc}")
        PIDS.unlink(missing_ok=True)


def start_group(tracker: Tracker, name: str, argv: list, **popen_kwargs) -> subprocess.Popen:
    """Start ``argv`` in its own session (process group id == pid) and register the group with ``tracker``."""
    proc = subprocess.Popen([str(a) for a in argv], start_new_session=True, **popen_kwargs)  # noqa: S603 - argv built here
    tracker.add(name, proc.pid, lambda: stop_group(proc))
    return proc


def stop_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (it and what it started), SIGKILL what is left after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break  # the whole group is gone
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            continue
        break
    proc.wait()
    if proc.stdout:
        proc.stdout.close()


def bed_stop() -> None:
    subprocess.run([str(ROOT / "tools" / "bed"), "stop", "--state-dir", str(BED)], check=False, capture_output=True)


def stop_leftovers() -> int:
    """Stop what an interrupted demo left running (process groups and the bed)."""
    stopped = 0
    if PIDS.exists():
        for name, pid in json.loads(PIDS.read_text()).items():
            try:
                os.killpg(pid, signal.SIGTERM)
                print(f"stopped {name} (pid {pid})")
                stopped += 1
            except ProcessLookupError:
                pass
        PIDS.unlink(missing_ok=True)
    if (BED / "bed.json").exists():
        bed_stop()
        print("stopped the local clusters (tools/bed stop)")
        stopped += 1
    if not stopped:
        print("nothing to stop")
    return 0


# --------------------------------------------------------------------------- output
class Report:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []
        self.t0 = time.monotonic()
        self.stage: str | None = None  # the part of the demo running now, named in the summary if it fails

    def begin(self, stage: str | None) -> None:
        self.stage = stage

    def failed(self, exc: BaseException) -> None:
        """Add the running stage to the summary as FAILED (or INTERRUPTED) with the first line of the reason."""
        if self.stage is None:
            return
        if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and exc.code in (130, 143)):
            how, reason = "INTERRUPTED", "SIGINT" if isinstance(exc, KeyboardInterrupt) else "SIGTERM"
        elif isinstance(exc, SystemExit):
            how, reason = "FAILED", str(exc.code).strip().removeprefix("demo failed: ")
        else:
            how, reason = "FAILED", f"{type(exc).__name__}: {exc}"
        reason = (reason.splitlines() or [""])[0]
        self.add(self.stage, how, reason[:150] + ("..." if len(reason) > 150 else "") + "; the later steps did not run")
        self.stage = None

    def step(self, title: str) -> None:
        print(f"\n[{time.monotonic() - self.t0:6.1f}s] == {title}", flush=True)

    def info(self, text: str) -> None:
        print(f"           {text}", flush=True)

    def add(self, part: str, how: str, outcome: str) -> None:
        self.rows.append((part, how, outcome))

    def summary(self) -> None:
        print("\n" + "=" * 110)
        print(f"NGA4M demo summary ({time.monotonic() - self.t0:.0f}s)")
        print("=" * 110)
        width = max(len(r[0]) for r in self.rows) if self.rows else 10
        for part, how, outcome in self.rows:
            print(f"{part:<{width}}  {how:<9}  {outcome}")
        print("-" * 110)
        print("REAL     = the actual software ran here: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,")
        print("           helm, KServe's controller and its CRDs, MinIO (all built from pinned Go modules), Prometheus, MariaDB,")
        print("           mlflow server, KFP local runner, TensorFlow, onnxruntime, Triton Inference Server 2.51 (nvidia-pytriton's")
        print("           tritonserver, reading the bucket), ansible-playbook.")
        print("OURS     = written for the bed, named as ours: the fixture charts kube-prometheus-stack, kserve-resources and")
        print("           cert-manager (tests/fixtures/charts: the values paths and objects the roles use, not the upstream")
        print("           workloads), the kubeflow manifests fixture and Triton's onnxruntime backend (a Python-based backend).")
        print("           kwok simulates the nodes and pods: pods become Ready, their images are never pulled and nothing runs")
        print("           in them (so Triton runs here, on the machine, over the same bucket).")
        if any(how in ("FAILED", "INTERRUPTED") for _part, how, _outcome in self.rows):
            print("FAILED / INTERRUPTED = the step that stopped the demo (details around this summary); the rows above it completed.")


def fail(message: str):
    raise SystemExit(f"\ndemo failed: {message}")


def check(cond: bool, message: str) -> None:
    if not cond:
        fail(message)


# --------------------------------------------------------------------------- steps
def ensure_system() -> None:
    """tools/bootstrap: the Debian packages the demo needs (installed when missing) and the bed's binaries."""
    run = subprocess.run([str(ROOT / "tools" / "bootstrap")], check=False)
    if run.returncode != 0:
        fail("tools/bootstrap could not provide the system packages or build the bed's binaries (see its message above)")


class BedS3:
    """The bed's S3 server (MinIO): endpoint and generated keys from <bed>/s3.json."""

    def __init__(self, info: dict):
        self.endpoint = info["endpoint"]
        self.url = f"http://{self.endpoint}"
        self.access_key = info["access_key"]
        self.secret_key = info["secret_key"]
        self.region = info["region"]


def start_services(rep: Report, tracker: Tracker, work: Path) -> dict:
    from tests.helpers.mariadb import MariaDB
    from tests.helpers.prometheus import PrometheusServer

    s3 = BedS3(json.loads((BED / "s3.json").read_text()))
    rep.info(f"shared object storage: MinIO {s3.url}, keys generated into {BED / 's3.json'}")

    rep.step("MLflow tracking server on a real MariaDB (artifacts to the S3 bucket)")
    db = MariaDB(work)
    tracker.add("mariadb", db.proc.pid, db.stop)
    password = os.urandom(12).hex()
    db.create_database("mlflow", "mlflow", password)
    mlflow_port = free_port()
    s3_env = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_DEFAULT_REGION": s3.region}
    mlflow = ManagedProcess(
        [Path(sys.executable).parent / "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
         "--backend-store-uri", f"mysql+pymysql://mlflow:{password}@127.0.0.1:{db.port}/mlflow",
         "--artifacts-destination", f"s3://{BUCKET}/mlflow"],
        log_path=work / "mlflow.log", env={**s3_env, "MLFLOW_S3_ENDPOINT_URL": s3.url}, cwd=work,
    )
    tracker.add("mlflow", mlflow.pid, mlflow.stop)
    mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
    rep.info(f"MariaDB 127.0.0.1:{db.port}, mlflow server {mlflow_uri} (waiting for it to answer)")

    rep.step("One Prometheus per secondary cluster (sc1 will scrape Triton's metrics port)")
    model_port = free_port()
    proms = {}
    for sc in ("sc1", "sc2"):
        jobs = []
        if sc == "sc1":
            # What the model_monitoring ServiceMonitor makes the SC Prometheus scrape: the model pods' metrics port.
            jobs.append({"job_name": "model-metrics", "honor_labels": True, "scrape_interval": "1s", "scrape_timeout": "1s",
                         "static_configs": [{"targets": [f"127.0.0.1:{model_port}"],
                                             "labels": {"namespace": "models", "service": "model-metrics", "pod": "iris-predictor"}}]})
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "external_labels": {"cluster": sc}}, "scrape_configs": jobs}
        prom = PrometheusServer(config, work, name=f"{sc}-prometheus")
        prom.start()
        tracker.add(f"{sc}-prometheus", prom.process.pid, prom.stop)
        proms[sc] = prom
        rep.info(f"{sc}: {prom.url}")
    try:
        wait_http(f"{mlflow_uri}/health", timeout=300, proc=mlflow.proc)
    except RuntimeError as exc:
        fail(f"{exc}\n{mlflow.log_text()[-3000:]}")
    rep.add("object storage (S3 API)", "REAL", f"MinIO {s3.url}, driven by the minio SDK")
    rep.add("MLflow tracking server + MariaDB", "REAL", f"mlflow server {mlflow_uri}, backend mysql+pymysql")
    return {"s3": s3, "mlflow_uri": mlflow_uri, "proms": proms, "model_port": model_port, "s3_env": s3_env}


def start_bed(rep: Report, tracker: Tracker) -> dict:
    rep.step("Local clusters pc, sc1, sc2 (real control planes, kwok nodes), chart repository, MinIO (tools/bed)")
    bed_stop()
    shutil.rmtree(BED, ignore_errors=True)
    t0 = time.monotonic()
    proc = subprocess.run([str(ROOT / "tools" / "bed"), "start", "--state-dir", str(BED)], capture_output=True, text=True, check=False)
    check(proc.returncode == 0, f"tools/bed start failed:\n{proc.stdout}\n{proc.stderr}")
    tracker.add("local clusters", None, bed_stop)
    state = json.loads((BED / "bed.json").read_text())
    for name, info in state["clusters"].items():
        rep.info(f"{name}: {info['server']} (kubeconfig {info['kubeconfig']})")
    rep.info(f"chart repository {state['charts_url']}; started in {time.monotonic() - t0:.0f}s")
    rep.add("Kubernetes pc, sc1, sc2 (etcd, API server, controllers, scheduler)", "REAL",
            f"{pins()['NGA4M_KUBERNETES_VERSION']}, started in {time.monotonic() - t0:.0f}s; nodes and pods simulated by kwok")
    return state["clusters"]


def converge(rep: Report, services: dict) -> dict:
    env = {
        **bed_env(BED),
        "NGA4M_DEMO_SC1_PROMETHEUS_URL": services["proms"]["sc1"].url,
        "NGA4M_DEMO_SC2_PROMETHEUS_URL": services["proms"]["sc2"].url,
        "ANSIBLE_FORKS": "10",
    }
    results = {}
    for label in ("first", "second"):
        rep.step(f"ansible-playbook site.yml -i inventories/demo ({label} run)")
        t0 = time.monotonic()
        run = run_playbook(ROOT / "site.yml", inventory=ROOT / "inventories" / "demo", env=env, timeout=1800)
        took = time.monotonic() - t0
        if run.rc != 0:
            print(run.stdout[-8000:])
            print(run.stderr[-3000:])
            fail(f"site.yml exited {run.rc}")
        per_host = {h: (s.get("ok", 0), s.get("changed", 0)) for h, s in sorted(run.stats.items())}
        rep.info(f"{took:.0f}s, per host (ok, changed): {per_host}")
        results[label] = (took, run.changed_total())
    check(results["second"][1] == 0, f"the second site.yml run changed {results['second'][1]} things")
    rep.add("site.yml on pc, sc1, sc2 (helm with the fixture charts)", "REAL",
            f"converge {results['first'][0]:.0f}s, re-run {results['second'][0]:.0f}s with changed=0")
    return env


def start_pc_prometheus(rep: Report, tracker: Tracker, work: Path) -> object:
    from tests.helpers.prometheus import PrometheusServer, promtool_check_config, release_federation_jobs

    rep.step("Primary cluster Prometheus with the federation jobs its kube-prometheus-stack release received")
    try:
        jobs = release_federation_jobs(BED / "pc.kubeconfig", bed_env(BED))  # federating every second, to show results quickly
    except RuntimeError as exc:
        fail(str(exc))
    for job in jobs:
        rep.info(f"{job['job_name']}: {job['static_configs'][0]['targets']} match[]={job['params']['match[]']}")
    config_path = work / "pc-prometheus.yml"
    config_path.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}))
    checked = promtool_check_config(config_path)
    check(checked.returncode == 0, f"promtool check config failed: {checked.stdout}{checked.stderr}")
    rep.info("promtool check config: SUCCESS")
    pc = PrometheusServer(config_path, work, name="pc-prometheus").start()
    tracker.add("pc-prometheus", pc.process.pid, pc.stop)
    rep.info(f"pc: {pc.url}")
    return pc


def run_pipeline(rep: Report, tracker: Tracker, services: dict, work: Path) -> dict:
    rep.step("Iris pipeline with the KFP local runner: data -> preprocess -> Keras -> train -> ONNX -> publish -> serve on sc1")
    s3 = services["s3"]
    summary_file = work / "pipeline-summary.json"
    env = {**os.environ, **services["s3_env"], "NGA4M_COLLECTION_PATH": str(ensure_collection_tree()), "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(work)}
    argv = [sys.executable, IRIS / "pipeline.py", "--run-local", "--pipeline-root", work / "kfp-root", "--summary", summary_file,
            "--s3-endpoint", s3.endpoint, "--bucket", BUCKET, "--mlflow-tracking-uri", services["mlflow_uri"], "--target-cluster", "sc1",
            "--ready-timeout", "120"]
    t0 = time.monotonic()
    # Own process group, tracked: SIGTERM / `make demo-stop` also stop the runner and the step processes it started.
    proc = start_group(tracker, "pipeline", argv, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    seen_tasks: list = []
    for line in proc.stdout:
        log.append(line)
        match = re.search(r"[Tt]ask '([\w-]+)'", line)
        if match and match.group(1) not in seen_tasks:  # progress: one line per pipeline step as it starts
            seen_tasks.append(match.group(1))
            rep.info(f"step {len(seen_tasks)}: {match.group(1)} ({time.monotonic() - t0:.0f}s)")
    proc.wait()
    took = time.monotonic() - t0
    stop_group(proc)  # anything the runner left behind in its group
    tracker.forget("pipeline")
    if proc.returncode != 0:
        print("".join(log[-200:]))
        fail(f"the pipeline exited {proc.returncode}")
    summary = json.loads(summary_file.read_text())
    conv = summary["convert_metrics"]["metadata"]
    rep.info(f"{took:.0f}s: ONNX accuracy {conv['onnx_accuracy']:.3f}, Keras/ONNX agreement {conv['keras_onnx_agreement']:.3f}")
    rep.info(f"published {summary['storage_uri']}, InferenceService url {summary['url']}, MLflow run {summary['mlflow_run_id']}")
    rep.add("KFP pipeline (local runner), TensorFlow, tf2onnx", "REAL",
            f"{took:.0f}s; ONNX accuracy {conv['onnx_accuracy']:.3f} on held-out rows; MLflow run {summary['mlflow_run_id'][:8]}")
    rep.add("InferenceService iris on sc1", "REAL", f"created with the deployer kubeconfig from object storage; KServe's controller "
            f"({pins()['NGA4M_KSERVE_VERSION']}) made it Ready: {summary['url']}; its pod simulated by kwok")
    return summary


def serve_and_infer(rep: Report, tracker: Tracker, services: dict, work: Path) -> str:
    rep.step("Triton Inference Server over the published repository on S3, then inference with examples/iris/infer.py")
    s3 = services["s3"]
    http_port, grpc_port = free_port(), free_port()
    env = {**services["s3_env"]}
    server = ManagedProcess([sys.executable, IRIS / "serve_triton.py", "--endpoint", s3.endpoint, "--bucket", BUCKET, "--prefix", PREFIX,
                             "--address", "127.0.0.1", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
                             "--metrics-port", str(services["model_port"])], log_path=work / "tritonserver.log", env=env)
    tracker.add("tritonserver", server.pid, server.stop)
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_http(f"{url}/v2/health/ready", timeout=120, proc=server.proc)
    except RuntimeError as exc:
        fail(f"{exc}\n{server.log_text()[-3000:]}")
    with urllib.request.urlopen(f"{url}/v2/models/iris", timeout=10) as resp:
        meta = json.load(resp)
    rep.info(f"tritonserver {url} (gRPC 127.0.0.1:{grpc_port}, metrics :{services['model_port']}) loaded iris versions "
             f"{meta.get('versions')} ({meta.get('platform')}) from s3://{BUCKET}/{PREFIX}")
    rows = ["5.1,3.5,1.4,0.2", "6.4,3.2,4.5,1.5", "6.3,3.3,6.0,2.5"]
    argv = [sys.executable, IRIS / "infer.py", "--url", url, "--host", "iris.models.example.com", "--protocol", "both", "--json"]
    for row in rows:
        argv += ["--row", row]
    for _round in range(5):  # a few requests, so Triton has metrics to federate
        out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env={**os.environ, **env}, check=False, timeout=120)
        check(out.returncode == 0, f"infer.py failed: {out.stdout}{out.stderr}")
    result = json.loads(out.stdout)
    classes = {proto: [row.get("class") for row in rows_out] for proto, rows_out in result.items()}
    rep.info(f"rows {rows}")
    rep.info(f"classes per protocol: {classes}")
    check(all(c == ["setosa", "versicolor", "virginica"] for c in classes.values()), f"unexpected classes {classes}")
    rep.add("v2 inference (REST JSON + tritonclient binary)", "REAL", f"Triton Inference Server 2.51 (nvidia-pytriton) from s3://; "
            f"classes {classes.get('json')}")
    rep.add("onnxruntime backend inside Triton", "OURS", "examples/iris/triton_backends/onnxruntime/model.py (Triton's Python "
            "backend runs it; the wheel has no ONNX Runtime backend)")
    return url


def federated_metrics(rep: Report, pc) -> None:
    rep.step(f"Triton's metrics on the PC Prometheus, federated from sc1 ({MODEL_METRIC})")
    deadline = time.monotonic() + 90
    series: list = []
    while time.monotonic() < deadline:
        series = pc.query(f'{MODEL_METRIC}{{cluster="sc1"}}')
        if series:
            break
        time.sleep(1)
    check(bool(series), f"no {MODEL_METRIC} series with cluster=\"sc1\" reached the PC Prometheus within 90s")
    for s in series[:6]:
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted(s["metric"].items()) if k in ("cluster", "namespace", "model", "version", "job", "__name__"))
        rep.info(f"{{{labels}}} = {s['value'][1]}")
    others = pc.query('count by (cluster) ({__name__=~".+", cluster!=""})')
    rep.info(f"series per cluster on the PC: { {o['metric'].get('cluster'): o['value'][1] for o in others} }")
    rep.add("federation sc1/sc2 -> pc (Prometheus)", "REAL", f"{len(series)} Triton series on the PC with cluster=\"sc1\"")

    rep.step("The served-models dashboard (ConfigMap on pc) on the PC Prometheus: every Triton panel returns data for sc1/iris")
    got = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(BED / "pc.kubeconfig"), "-n", "monitoring", "get",
                          "configmap", "nga4m-served-models", "-o", "json"], capture_output=True, text=True, check=False, timeout=60)
    check(got.returncode == 0, f"the dashboard ConfigMap is not on pc: {got.stderr}")
    dashboard = json.loads(next(iter(json.loads(got.stdout)["data"].values())))
    panels = [(p["title"], t["expr"]) for p in dashboard["panels"] if "Triton" in p["title"] for t in p["targets"]]
    empty = []
    for title, expr in panels:
        query = expr.replace("$__rate_interval", "1m").replace("$cluster", "sc1").replace("$model", "iris")
        deadline = time.monotonic() + 60
        while not pc.query(query) and time.monotonic() < deadline:
            time.sleep(2)
        if not pc.query(query):
            empty.append(title)
    for title in dict.fromkeys(t for t, _e in panels):
        rep.info(f"{'no data' if title in empty else 'data   '}  {title}")
    check(not empty, f"dashboard panels without data on the PC Prometheus: {sorted(set(empty))}")
    rep.add("served-models dashboard PromQL on the PC", "REAL", f"{len(panels)} Triton panel queries return data for sc1/iris")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="stop what an interrupted demo left running")
    args = parser.parse_args()
    if args.stop:
        return stop_leftovers()

    ensure_system()
    stop_leftovers()
    ensure_collection_tree()
    rep = Report()
    tracker = Tracker()
    atexit.register(tracker.stop_all)
    signal.signal(signal.SIGTERM, lambda *_a: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="nga4m-demo-") as tmp:
        work = Path(tmp)
        try:
            rep.begin("local clusters pc, sc1, sc2 (tools/bed)")
            start_bed(rep, tracker)
            rep.begin("S3 server, MLflow + MariaDB, SC Prometheus")
            services = start_services(rep, tracker, work)
            rep.begin("site.yml on pc, sc1, sc2")
            converge(rep, services)
            rep.begin("PC Prometheus with the federation jobs")
            pc = start_pc_prometheus(rep, tracker, work)
            rep.begin("KFP pipeline (local runner), TensorFlow, tf2onnx")
            run_pipeline(rep, tracker, services, work)
            rep.begin("v2 inference (REST JSON + tritonclient binary)")
            serve_and_infer(rep, tracker, services, work)
            rep.begin("federation sc1/sc2 -> pc (Prometheus)")
            federated_metrics(rep, pc)
            rep.begin(None)
        except BaseException as exc:
            rep.failed(exc)  # the summary below then shows what ran and which step failed
            raise
        finally:
            rep.step("Stopping everything the demo started")
            tracker.stop_all()
            rep.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
