"""What the iris pipeline needs to run locally end to end, for tests and benchmarks.

``IrisBed(workdir, mlflow=True)`` starts (each stopped by ``stop()``, in reverse order):

* a real S3 server (``moto_server``, tests/helpers/s3.py) holding the bucket ``nga4m``
  with the data set at ``datasets/iris/iris.csv`` and SC1's deployer kubeconfig at
  ``kubeconfigs/sc1`` (what the object_storage role writes);
* the Kubernetes API test double (tests/doubles/kubeapi_double.py) as cluster ``sc1``,
  with the KServe CRDs of tests/fixtures/kserve_crds.yml, the ``models`` namespace and a
  ``model-deployer`` ServiceAccount whose TokenRequest token the deployer kubeconfig
  carries. The double's emulated KServe controller marks InferenceServices Ready;
* with ``mlflow=True``, a real ``mlflow server`` (SQLite backend store, artifacts proxied
  to the moto bucket).

``run_pipeline(summary_file)`` runs ``examples/iris/pipeline.py --run-local`` (the KFP
local runner) against them in a subprocess and returns the ``CompletedProcess``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.playbook import ensure_collection_tree
from tests.helpers.procs import ManagedProcess, free_port, wait_file, wait_http
from tests.helpers.s3 import S3Server

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "iris"
BUCKET = "nga4m"
DATASET_KEY = "datasets/iris/iris.csv"
PREFIX = "models/triton"
MODEL = "iris"
NAMESPACE = "models"
SERVICE_ACCOUNT = "kserve-models"
PIPELINE_TIMEOUT = 1500


def deployer_kubeconfig(admin_kubeconfig: Path) -> tuple[dict, object]:
    """Prepare SC1 as the kserve and object_storage roles would; return (deployer kubeconfig, admin api client)."""
    from kubernetes import config as k8s_config  # noqa: PLC0415
    from kubernetes import dynamic, utils  # noqa: PLC0415
    from kubernetes.client import CoreV1Api  # noqa: PLC0415

    api = k8s_config.new_client_from_config(str(admin_kubeconfig))
    utils.create_from_yaml(api, str(REPO / "tests" / "fixtures" / "kserve_crds.yml"))
    core = CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "model-deployer"}})
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": SERVICE_ACCOUNT}, "secrets": [{"name": "kserve-s3"}]})
    token = core.create_namespaced_service_account_token(
        "model-deployer", NAMESPACE, {"spec": {"audiences": [], "expirationSeconds": 3600}}
    ).status.token
    dynamic.DynamicClient(api).resources.get(api_version="serving.kserve.io/v1beta1", kind="InferenceService")  # CRD served
    server = yaml.safe_load(admin_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sc1", "cluster": {"server": server}}],
        "users": [{"name": "model-deployer", "user": {"token": token}}],
        "contexts": [{"name": "sc1-deployer", "context": {"cluster": "sc1", "user": "model-deployer", "namespace": NAMESPACE}}],
        "current-context": "sc1-deployer",
    }
    return kubeconfig, api


class IrisBed:
    """S3 server, emulated SC1 and (optionally) an mlflow server for the iris pipeline; see the module docstring."""

    def __init__(self, workdir: Path, mlflow: bool = True):
        self.work = Path(workdir)
        self.started: list = []
        self.mlflow_uri = ""
        try:
            self._start(mlflow)
        except BaseException:
            self.stop()
            raise

    def _start(self, mlflow: bool) -> None:
        self.s3 = S3Server(self.work)
        self.started.append(self.s3)
        client = self.s3.client()
        client.make_bucket(BUCKET)
        client.fput_object(BUCKET, DATASET_KEY, str(IRIS / "data" / "iris.csv"), content_type="text/csv")

        state = self.work / "kube"
        kube = ManagedProcess([sys.executable, REPO / "tests" / "doubles" / "kubeapi_double.py", "--state-dir", state, "--cluster", "sc1"],
                              log_path=self.work / "kubeapi.log", env={"TMPDIR": str(self.work)})
        self.started.append(kube)
        wait_file(state / "clusters.json", kube)
        deployer, self.admin_api = deployer_kubeconfig(state / "sc1.kubeconfig")
        data = yaml.safe_dump(deployer).encode()
        client.put_object(BUCKET, "kubeconfigs/sc1", io.BytesIO(data), len(data))

        self.s3_env = {"AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
                       "AWS_DEFAULT_REGION": self.s3.region}
        if mlflow:
            port = free_port()
            server = ManagedProcess(
                [Path(sys.executable).parent / "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.work / 'mlflow.db'}", "--artifacts-destination", f"s3://{BUCKET}/mlflow"],
                log_path=self.work / "mlflow.log", env={**self.s3_env, "MLFLOW_S3_ENDPOINT_URL": self.s3.url}, cwd=self.work,
            )
            self.started.append(server)
            self.mlflow_uri = f"http://127.0.0.1:{port}"
            try:
                wait_http(f"{self.mlflow_uri}/health", timeout=300, proc=server.proc)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n--- mlflow log ---\n{server.log_text()[-4000:]}") from exc

        self.env = {
            **os.environ,
            **self.s3_env,
            "NGA4M_COLLECTION_PATH": str(ensure_collection_tree()),
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TMPDIR": str(self.work),
        }

    def run_pipeline(self, summary_file: Path) -> subprocess.CompletedProcess:
        """``pipeline.py --run-local`` against this bed (outputs summarised as JSON in ``summary_file``)."""
        argv = [sys.executable, IRIS / "pipeline.py", "--run-local", "--pipeline-root", self.work / "kfp-root", "--summary", summary_file,
                "--s3-endpoint", self.s3.endpoint, "--bucket", BUCKET, "--target-cluster", "sc1", "--ready-timeout", "120"]
        if self.mlflow_uri:
            argv += ["--mlflow-tracking-uri", self.mlflow_uri]
        return subprocess.run([str(a) for a in argv], env=self.env, cwd=self.work, capture_output=True, text=True,
                              timeout=PIPELINE_TIMEOUT, check=False)

    def serve_local(self, port: int) -> ManagedProcess:
        """``examples/iris/serve_local.py`` (kserve ModelServer + onnxruntime) over the published repository."""
        server = ManagedProcess(
            [sys.executable, IRIS / "serve_local.py", "--endpoint", self.s3.endpoint, "--bucket", BUCKET, "--prefix", PREFIX,
             "--model", MODEL, "--http-port", str(port)],
            log_path=self.work / f"serve_local-{port}.log", env=self.env,
        )
        self.started.append(server)
        try:
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", timeout=120, proc=server.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- serve_local log ---\n{server.log_text()[-4000:]}") from exc
        return server

    def stop(self) -> None:
        while self.started:
            self.started.pop().stop()
