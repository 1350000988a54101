"""What the iris pipeline needs to run locally end to end, for tests and benchmarks.

``IrisBed(workdir, mlflow=True)`` starts (each stopped by ``stop()``, in reverse order):

* a bed of its own (tests/helpers/bed.py, state in ``workdir/bed``) with one real cluster
  ``sc1`` (kube-apiserver with RBAC, controller manager, scheduler, kwok nodes), the chart
  repository and the bed runner;
* a real S3 server (MinIO, ``tests/helpers/s3.py``);
* then, as in production, two roles through ``ansible-playbook``: ``kserve`` on sc1
  (cert-manager, KServe's real CRDs, the kserve-resources chart - whose controller pod makes
  the bed runner start KServe's REAL controller manager against sc1 -, the Triton
  ClusterServingRuntime, the ``models`` namespace, the S3 Secret and ServiceAccount) and
  ``object_storage`` (the bucket ``nga4m`` with its prefixes, the data set at
  ``datasets/iris/iris.csv``, and sc1's least-privilege deployer: ServiceAccount + Role limited
  to InferenceServices in ``models``, whose bound TokenRequest token is stored as a kubeconfig
  at ``kubeconfigs/sc1``). The pipeline's serve step uses that kubeconfig and waits until the
  real controller reports the InferenceService Ready;
* with ``mlflow=True``, a real ``mlflow server`` (SQLite backend store, artifacts proxied
  to the bucket).

``run_pipeline(summary_file)`` runs ``examples/iris/pipeline.py --run-local`` (the KFP
local runner) against them in a subprocess and returns the ``CompletedProcess``;
``serve_triton()`` starts the real Triton Inference Server (tests/helpers/triton.py) over
the published repository in the bucket.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.helpers.bed import Bed, chart_vars
from tests.helpers.playbook import ensure_collection_tree, run_playbook
from tests.helpers.procs import ManagedProcess, free_port, wait_http
from tests.helpers.s3 import S3Server
from tests.helpers.triton import TritonServer

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "iris"
PLAYBOOKS = REPO / "tests" / "integration" / "playbooks"
CLUSTER = "sc1"
BUCKET = "nga4m"
DATASET_KEY = "datasets/iris/iris.csv"
KUBECONFIG_KEY = f"kubeconfigs/{CLUSTER}"
PREFIX = "models/triton"
MODEL = "iris"
NAMESPACE = "models"
SERVICE_ACCOUNT = "kserve-models"
DEPLOYER = "model-deployer"
PIPELINE_TIMEOUT = 1500


class _StopBed:
    """Adapter: ``stop()`` of a Bed that fails when one of its processes survived."""

    def __init__(self, bed: Bed):
        self.bed = bed

    def stop(self) -> None:
        left = self.bed.stop()
        if left:
            raise RuntimeError(f"the iris bed left processes running: {left}")


class IrisBed:
    """Real SC1 with KServe, MinIO and (optionally) an mlflow server for the iris pipeline; see the module docstring."""

    def __init__(self, workdir: Path, mlflow: bool = True):
        self.work = Path(workdir)
        self.started: list = []
        self.mlflow_uri = ""
        self.timings: dict[str, float] = {}
        try:
            self._start(mlflow)
        except BaseException:
            self.stop()
            raise

    def _start(self, mlflow: bool) -> None:
        t0 = time.monotonic()
        self.bed = Bed(self.work / "bed")
        self.started.append(_StopBed(self.bed))
        self.bed.start(clusters=[CLUSTER], s3=False)
        self.s3 = S3Server(self.work)
        self.started.append(self.s3)
        self.timings["bed"] = time.monotonic() - t0
        self.kubeconfig = self.bed.dir / f"{CLUSTER}.kubeconfig"
        self.s3_env = {"AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
                       "AWS_DEFAULT_REGION": self.s3.region}
        server = None
        if mlflow:  # starts while the roles converge (its bucket is needed only when a run logs artifacts)
            port = free_port()
            server = ManagedProcess(
                [Path(sys.executable).parent / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.work / 'mlflow.db'}", "--artifacts-destination", f"s3://{BUCKET}/mlflow"],
                log_path=self.work / "mlflow.log", env={**self.s3_env, "MLFLOW_S3_ENDPOINT_URL": self.s3.url}, cwd=self.work,
            )
            self.started.append(server)
            self.mlflow_uri = f"http://127.0.0.1:{port}"
        self._converge()

        from kubernetes import config as k8s_config  # noqa: PLC0415

        self.admin_api = k8s_config.new_client_from_config(str(self.kubeconfig))
        if server is not None:
            t0 = time.monotonic()
            try:
                wait_http(f"{self.mlflow_uri}/health", timeout=300, proc=server.proc)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n--- mlflow log ---\n{server.log_text()[-4000:]}") from exc
            self.timings["mlflow (after the roles)"] = time.monotonic() - t0

        self.env = {
            **os.environ,
            **self.s3_env,
            "NGA4M_COLLECTION_PATH": str(ensure_collection_tree()),
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TMPDIR": str(self.work),
        }

    def _converge(self) -> None:
        """The kserve role on sc1, then the object_storage role (bucket, data set, sc1's deployer kubeconfig)."""

        host = {"kubeconfig": str(self.kubeconfig), "context": CLUSTER, "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable}
        inventory = self.work / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {
            "vars": {**chart_vars(self.bed),
                     "object_storage_endpoint": self.s3.endpoint, "object_storage_region": self.s3.region,
                     "object_storage_access_key": self.s3.access_key, "object_storage_secret_key": self.s3.secret_key,
                     "object_storage_bucket": BUCKET, "object_storage_deployer_namespace": NAMESPACE,
                     "object_storage_deployer_service_account": DEPLOYER,
                     "object_storage_files": [{"src": str(IRIS / "data" / "iris.csv"), "key": DATASET_KEY}]},
            "children": {"sc": {"hosts": {CLUSTER: host}}}}}, sort_keys=False))
        for playbook in ("kserve_role.yml", "object_storage_role.yml"):
            t0 = time.monotonic()
            run = run_playbook(PLAYBOOKS / playbook, inventory=inventory, env=self.bed.env())
            self.timings[playbook.removesuffix(".yml")] = time.monotonic() - t0
            if run.rc != 0:
                raise RuntimeError(f"{playbook} failed on the iris bed (rc={run.rc}):\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}")

    def deployer_kubeconfig(self) -> dict:
        """SC1's deployer kubeconfig as the object_storage role stored it."""
        obj = self.s3.client().get_object(BUCKET, KUBECONFIG_KEY)
        try:
            return yaml.safe_load(obj.read())
        finally:
            obj.close()
            obj.release_conn()

    def run_pipeline(self, summary_file: Path) -> subprocess.CompletedProcess:
        """``pipeline.py --run-local`` against this bed (outputs summarised as JSON in ``summary_file``)."""
        argv = [sys.executable, IRIS / "pipeline.py", "--run-local", "--pipeline-root", self.work / "kfp-root", "--summary", summary_file,
                "--s3-endpoint", self.s3.endpoint, "--bucket", BUCKET, "--target-cluster", CLUSTER, "--ready-timeout", "120"]
        if self.mlflow_uri:
            argv += ["--mlflow-tracking-uri", self.mlflow_uri]
        return subprocess.run([str(a) for a in argv], env=self.env, cwd=self.work, capture_output=True, text=True,
                              timeout=PIPELINE_TIMEOUT, check=False)

    def serve_triton(self) -> TritonServer:
        """The real tritonserver (tests/helpers/triton.py) over the published repository on the bed's S3, polling it."""
        server = TritonServer(self.work, s3=self.s3, bucket=BUCKET, prefix=PREFIX, env=self.env)
        self.started.append(server)
        return server

    def stop(self) -> None:
        errors = []
        while self.started:
            try:
                self.started.pop().stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest, then report
                errors.append(exc)
        if errors:
            raise errors[0]
