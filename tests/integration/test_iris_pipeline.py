"""The iris example pipeline end to end, with the KFP local runner (``kfp.local.SubprocessRunner``).

Started by this module (each stopped in teardown):

* a real S3 server (``moto_server``, tests/helpers/s3.py) holding the bucket ``nga4m``
  with the data set at ``datasets/iris/iris.csv`` and SC1's deployer kubeconfig at
  ``kubeconfigs/sc1`` (what the object_storage role writes);
* the Kubernetes API test double (tests/doubles/kubeapi_double.py) as cluster ``sc1``,
  with the KServe CRDs of tests/fixtures/kserve_crds.yml, the ``models`` namespace and a
  ``model-deployer`` ServiceAccount whose TokenRequest token the deployer kubeconfig
  carries. The double's emulated KServe controller marks InferenceServices Ready;
* a real ``mlflow server`` (SQLite backend store, artifacts proxied to the moto bucket);
* after the pipeline: ``examples/iris/serve_local.py`` (kserve ModelServer + onnxruntime)
  over the published Triton repository, queried with ``examples/iris/infer.py``
  (plain JSON and ``tritonclient.http`` binary).

The pipeline runs once (``pipeline.py --run-local`` in a subprocess, module fixture);
the tests assert on what it left behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers.playbook import ensure_collection_tree
from tests.helpers.procs import ManagedProcess, free_port, wait_http
from tests.helpers.s3 import MotoS3

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "iris"
BUCKET = "nga4m"
DATASET_KEY = "datasets/iris/iris.csv"
PREFIX = "models/triton"
MODEL = "iris"
NAMESPACE = "models"
SA = "kserve-models"
RUNTIME = "kserve-tritonserver"
CLASS_NAMES = ["setosa", "versicolor", "virginica"]
PIPELINE_TIMEOUT = 1500

sys.path.insert(0, str(IRIS))
import infer  # noqa: E402  (examples/iris/infer.py)


def _wait_file(path: Path, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early ({proc.returncode}) before writing {path}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} not written within {timeout}s")
        time.sleep(0.1)


def _deployer_kubeconfig(admin_kubeconfig: Path) -> tuple[dict, object]:
    """Prepare SC1 as the kserve and object_storage roles would; return (deployer kubeconfig, admin api client)."""
    from kubernetes import config as k8s_config  # noqa: PLC0415
    from kubernetes import dynamic, utils  # noqa: PLC0415
    from kubernetes.client import CoreV1Api  # noqa: PLC0415

    api = k8s_config.new_client_from_config(str(admin_kubeconfig))
    utils.create_from_yaml(api, str(REPO / "tests" / "fixtures" / "kserve_crds.yml"))
    core = CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "model-deployer"}})
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": SA}, "secrets": [{"name": "kserve-s3"}]})
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


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    work = tmp_path_factory.mktemp("iris-pipeline")
    started: list = []
    timings: dict = {}
    try:
        t0 = time.monotonic()
        s3 = MotoS3(work)
        started.append(s3)
        client = s3.client()
        client.make_bucket(BUCKET)
        client.fput_object(BUCKET, DATASET_KEY, str(IRIS / "data" / "iris.csv"), content_type="text/csv")

        state = work / "kube"
        kube = ManagedProcess([sys.executable, REPO / "tests" / "doubles" / "kubeapi_double.py", "--state-dir", state, "--cluster", "sc1"],
                              log_path=work / "kubeapi.log", env={"TMPDIR": str(work)})
        started.append(kube)
        _wait_file(state / "clusters.json", kube.proc)
        deployer, admin_api = _deployer_kubeconfig(state / "sc1.kubeconfig")
        data = yaml.safe_dump(deployer).encode()
        client.put_object(BUCKET, "kubeconfigs/sc1", io.BytesIO(data), len(data))

        mlflow_port = free_port()
        s3_env = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_DEFAULT_REGION": s3.region}
        mlflow = ManagedProcess(
            [Path(sys.executable).parent / "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}", "--artifacts-destination", f"s3://{BUCKET}/mlflow"],
            log_path=work / "mlflow.log", env={**s3_env, "MLFLOW_S3_ENDPOINT_URL": s3.url}, cwd=work,
        )
        started.append(mlflow)
        mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
        try:
            wait_http(f"{mlflow_uri}/health", timeout=300, proc=mlflow.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- mlflow log ---\n{mlflow.log_text()[-4000:]}") from exc
        timings["services"] = time.monotonic() - t0

        summary_file = work / "summary.json"
        env = {
            **os.environ,
            **s3_env,
            "NGA4M_COLLECTION_PATH": str(ensure_collection_tree()),
            "KERAS_BACKEND": "tensorflow",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TMPDIR": str(work),
        }
        argv = [sys.executable, IRIS / "pipeline.py", "--run-local", "--pipeline-root", work / "kfp-root", "--summary", summary_file,
                "--s3-endpoint", s3.endpoint, "--bucket", BUCKET, "--mlflow-tracking-uri", mlflow_uri, "--target-cluster", "sc1",
                "--ready-timeout", "120"]
        t1 = time.monotonic()
        run = subprocess.run([str(a) for a in argv], env=env, cwd=work, capture_output=True, text=True, timeout=PIPELINE_TIMEOUT, check=False)
        timings["pipeline"] = time.monotonic() - t1
        (work / "pipeline.log").write_text(run.stdout + "\n--- stderr ---\n" + run.stderr)
        assert run.returncode == 0, f"pipeline failed ({run.returncode}):\n{run.stdout[-8000:]}\n--- stderr ---\n{run.stderr[-4000:]}"
        summary = json.loads(summary_file.read_text())
        print(f"\niris pipeline timings (s): { {k: round(v, 1) for k, v in timings.items()} }")
        yield {"work": work, "s3": s3, "admin_api": admin_api, "mlflow_uri": mlflow_uri, "summary": summary, "env": env,
               "stdout": run.stdout, "timings": timings, "started": started}
    finally:
        for proc in reversed(started):
            proc.stop()


@pytest.fixture(scope="module")
def store(bed):
    from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import open_store  # noqa: PLC0415

    return open_store(**bed["s3"].options(BUCKET))


@pytest.fixture(scope="module")
def v2_server(bed):
    """examples/iris/serve_local.py over the published repository (kserve ModelServer + onnxruntime)."""
    port = free_port()
    server = ManagedProcess(
        [sys.executable, IRIS / "serve_local.py", "--endpoint", bed["s3"].endpoint, "--bucket", BUCKET, "--prefix", PREFIX,
         "--model", MODEL, "--http-port", str(port)],
        log_path=bed["work"] / "serve_local.log", env=bed["env"],
    )
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/v2/health/ready", timeout=120, proc=server.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- serve_local log ---\n{server.log_text()[-4000:]}") from exc
        yield url
    finally:
        server.stop()


def _predictions(bed) -> list[dict]:
    with open(bed["summary"]["predictions"]["path"], encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_pipeline_outputs(bed):
    summary = bed["summary"]
    assert summary["storage_uri"] == f"s3://{BUCKET}/{PREFIX}"
    assert summary["url"] == f"http://iris.{NAMESPACE}.example"  # the double's emulated KServe controller
    assert summary["mlflow_run_id"]
    assert summary["train_metrics"]["metadata"]["accuracy"] >= 0.9
    metrics = summary["convert_metrics"]["metadata"]
    assert metrics["onnx_accuracy"] >= 0.9
    assert metrics["keras_onnx_agreement"] == 1.0


def test_onnx_accuracy_and_keras_agreement(bed, store):
    """Recompute from artifacts: the published ONNX model on the held-out rows vs the labels and the Keras predictions."""
    import onnxruntime as ort  # noqa: PLC0415

    rows = _predictions(bed)
    assert len(rows) == 45  # 30 % of 150, stratified
    features = np.array([[float(r[c]) for c in ("sepal_length", "sepal_width", "petal_length", "petal_width")] for r in rows], dtype=np.float32)
    labels = np.array([int(r["label"]) for r in rows])
    keras_prob = np.array([[float(r[f"keras_p_{n}"]) for n in CLASS_NAMES] for r in rows])

    session = ort.InferenceSession(store.get(f"{PREFIX}/{MODEL}/1/model.onnx"), providers=["CPUExecutionProvider"])
    probabilities, label = session.run(["probabilities", "label"], {"input": features})
    onnx_class = label.reshape(-1)
    accuracy = float((onnx_class == labels).mean())
    assert accuracy >= 0.9, accuracy
    assert (onnx_class == keras_prob.argmax(axis=1)).all()
    np.testing.assert_allclose(probabilities, keras_prob, atol=1e-5)
    assert [int(r["onnx_class"]) for r in rows] == onnx_class.tolist()


def test_published_triton_layout(bed, store, tmp_path):
    from ansible_collections.nga4m.platform.plugins.module_utils import triton  # noqa: PLC0415

    assert store.list(f"{PREFIX}/{MODEL}") == [f"{PREFIX}/{MODEL}/1/model.onnx", f"{PREFIX}/{MODEL}/config.pbtxt"]
    config = triton.parse_config(store.get(f"{PREFIX}/{MODEL}/config.pbtxt"))
    assert config.name == MODEL
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 16
    as_dict = triton.config_message_to_dict(config)
    assert as_dict["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}]
    assert sorted((o["name"], o["data_type"], o["dims"]) for o in as_dict["output"]) == [
        ("label", "TYPE_INT64", [1]), ("probabilities", "TYPE_FP32", [3])]
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(store.get(f"{PREFIX}/{MODEL}/1/model.onnx"))
    triton.check_config(config, triton.read_onnx(str(model_file)), MODEL)
    assert store.stat(f"{PREFIX}/{MODEL}/1/model.onnx").sha256 == triton.read_onnx(str(model_file)).sha256


def test_inference_service_on_sc1(bed):
    from kubernetes import dynamic  # noqa: PLC0415

    client = dynamic.DynamicClient(bed["admin_api"])
    resource = client.resources.get(api_version="serving.kserve.io/v1beta1", kind="InferenceService")
    isvc = client.get(resource, name="iris", namespace=NAMESPACE).to_dict()
    meta, predictor = isvc["metadata"], isvc["spec"]["predictor"]
    assert meta["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert predictor["serviceAccountName"] == SA
    assert predictor["model"] == {"modelFormat": {"name": "triton"}, "runtime": RUNTIME, "protocolVersion": "v2",
                                  "storageUri": f"s3://{BUCKET}/{PREFIX}"}
    assert [c["status"] for c in isvc["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    assert {m["manager"] for m in meta["managedFields"]} >= {"nga4m-iris-pipeline"}


def test_publish_and_serve_are_idempotent(bed, monkeypatch, capsys):
    """Re-running the publish and serve steps (plain functions) changes nothing: no upload, same generation."""
    import components  # noqa: PLC0415  (examples/iris/components)
    from kubernetes import dynamic  # noqa: PLC0415

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "NGA4M_COLLECTION_PATH"):
        monkeypatch.setenv(name, bed["env"][name])
    client = dynamic.DynamicClient(bed["admin_api"])
    resource = client.resources.get(api_version="serving.kserve.io/v1beta1", kind="InferenceService")
    before = client.get(resource, name="iris", namespace=NAMESPACE).metadata

    class Artifact:  # what KFP hands the function: an object with .path
        path = bed["summary"]["onnx_model"]["path"]

    s3 = bed["s3"]
    common = {"s3_endpoint": s3.endpoint, "s3_secure": False, "s3_region": s3.region, "bucket": BUCKET}
    uri = components.publish(onnx_model=Artifact(), repository_prefix=PREFIX, model_name=MODEL, model_version=1, max_batch_size=16, **common)
    assert uri == f"s3://{BUCKET}/{PREFIX}"
    assert "already published iris version 1" in capsys.readouterr().out
    url = components.serve(storage_uri=uri, kubeconfigs_prefix="kubeconfigs", target_cluster="sc1", namespace=NAMESPACE, isvc_name="iris",
                           runtime=RUNTIME, model_format="triton", service_account=SA, model_name=MODEL, model_version=1, ready_timeout=30,
                           **common)
    assert url == bed["summary"]["url"]
    after = client.get(resource, name="iris", namespace=NAMESPACE).metadata
    assert (after.generation, after.resourceVersion) == (before.generation, before.resourceVersion)


def test_serve_fails_clearly_without_kubeconfig(bed, monkeypatch):
    import components  # noqa: PLC0415

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "NGA4M_COLLECTION_PATH"):
        monkeypatch.setenv(name, bed["env"][name])
    s3 = bed["s3"]
    with pytest.raises(FileNotFoundError, match=r"no deployer kubeconfig for cluster 'sc9' at s3://nga4m/kubeconfigs/sc9"):
        components.serve(storage_uri=f"s3://{BUCKET}/{PREFIX}", s3_endpoint=s3.endpoint, s3_secure=False, s3_region=s3.region, bucket=BUCKET,
                         kubeconfigs_prefix="kubeconfigs", target_cluster="sc9", namespace=NAMESPACE, isvc_name="iris", runtime=RUNTIME,
                         model_format="triton", service_account=SA, model_name=MODEL, model_version=1, ready_timeout=5)


def test_v2_inference_json_and_binary(v2_server):
    infer.wait_ready(v2_server, MODEL, timeout=30)
    expected = ["setosa", "versicolor", "virginica"]
    by_json = infer.infer_json(v2_server, MODEL, infer.SAMPLE_ROWS)
    by_binary = infer.infer_binary(v2_server, MODEL, infer.SAMPLE_ROWS)
    assert [r["class"] for r in by_json] == expected
    assert [r["class"] for r in by_binary] == expected
    np.testing.assert_allclose([r["probabilities"] for r in by_json], [r["probabilities"] for r in by_binary], atol=1e-6)
    # KServe ingress style: the InferenceService host name in the Host header
    hosted = infer.infer_binary(v2_server, MODEL, infer.SAMPLE_ROWS, host="iris.models.example.com")
    assert [r["class"] for r in hosted] == expected


def test_infer_cli(v2_server, bed):
    argv = [sys.executable, IRIS / "infer.py", "--url", v2_server, "--host", "iris.models.example.com", "--protocol", "both",
            "--row", "5.0,3.4,1.5,0.2", "--row", "7.7,3.0,6.1,2.3"]
    run = subprocess.run([str(a) for a in argv], env=bed["env"], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert [line.split("->")[1].split()[0] for line in lines] == ["setosa", "virginica", "setosa", "virginica"]
    assert lines[0].startswith("json") and lines[2].startswith("binary")
    missing = subprocess.run([str(a) for a in [sys.executable, IRIS / "infer.py", "--url", v2_server, "--model", "nope", "--timeout", "1"]],
                             env=bed["env"], capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 1
    assert "not ready within 1.0s" in missing.stderr


def test_mlflow_holds_run_metrics_and_model(bed):
    from mlflow.tracking import MlflowClient  # noqa: PLC0415

    client = MlflowClient(tracking_uri=bed["mlflow_uri"])
    run = client.get_run(bed["summary"]["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["accuracy"] >= 0.9
    assert run.data.metrics["onnx_accuracy"] >= 0.9
    assert run.data.params["epochs"] == "100"
    assert run.data.tags["nga4m.pipeline"] == "iris"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "onnx")] == ["onnx/model.onnx"]
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    assert [m.name for m in models] == ["model"]
    files = {a.path for a in client.list_logged_model_artifacts(models[0].model_id)}
    assert "MLmodel" in files
    # the artifacts went through the server to the S3 bucket
    assert any(k.endswith("/MLmodel") for k in bed["s3"].keys(BUCKET, "mlflow/"))
