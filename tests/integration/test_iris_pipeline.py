"""The iris example pipeline end to end, with the KFP local runner (``kfp.local.SubprocessRunner``).

Started by this module through ``tests/helpers/iris_bed.IrisBed`` (each stopped in teardown):
a real cluster ``sc1`` (kube-apiserver with RBAC, kwok nodes) on which the kserve role
installed KServe - its REAL controller manager runs against sc1 -, a real S3 server (MinIO)
prepared by the object_storage role (data set, SC1's least-privilege deployer kubeconfig)
and a real ``mlflow server``; after the pipeline, the real Triton Inference Server
(``examples/iris/serve_triton.py``: nvidia-pytriton's tritonserver with NGA4M's onnxruntime
Python-based backend; nothing runs inside the kwok pods) serves the published repository
straight from the bucket, queried with ``examples/iris/infer.py`` (plain JSON and
``tritonclient.http`` binary).

The pipeline runs once (``pipeline.py --run-local`` in a subprocess, module fixture);
the tests assert on what it left behind.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit

import numpy as np
import pytest

from tests.helpers.iris_bed import BUCKET, DEPLOYER, IRIS, MODEL, NAMESPACE, PREFIX, IrisBed
from tests.helpers.iris_bed import SERVICE_ACCOUNT as SA

RUNTIME = "nga4m-tritonserver"
CLASS_NAMES = ["setosa", "versicolor", "virginica"]

sys.path.insert(0, str(IRIS))
import infer  # noqa: E402  (examples/iris/infer.py)


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    work = tmp_path_factory.mktemp("iris-pipeline")
    t0 = time.monotonic()
    iris = IrisBed(work, mlflow=True)
    try:
        timings = {"services": time.monotonic() - t0, **iris.timings}
        summary_file = work / "summary.json"
        t1 = time.monotonic()
        run = iris.run_pipeline(summary_file)
        timings["pipeline"] = time.monotonic() - t1
        (work / "pipeline.log").write_text(run.stdout + "\n--- stderr ---\n" + run.stderr)
        assert run.returncode == 0, f"pipeline failed ({run.returncode}):\n{run.stdout[-8000:]}\n--- stderr ---\n{run.stderr[-4000:]}"
        summary = json.loads(summary_file.read_text())
        print(f"\niris pipeline timings (s): { {k: round(v, 1) for k, v in timings.items()} }")
        yield {"work": work, "iris": iris, "s3": iris.s3, "admin_api": iris.admin_api, "mlflow_uri": iris.mlflow_uri,
               "summary": summary, "env": iris.env, "stdout": run.stdout, "timings": timings}
    finally:
        iris.stop()


@pytest.fixture(scope="module")
def store(bed):
    from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import open_store  # noqa: PLC0415

    return open_store(**bed["s3"].options(BUCKET))


@pytest.fixture(scope="module")
def triton_server(bed):
    """The real tritonserver over the published repository, read from the bucket (s3://) and polled."""
    server = bed["iris"].serve_triton()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def v2_server(triton_server):
    return triton_server.url


@pytest.fixture(scope="module")
def isvc_host(bed) -> str:
    """The host name of the InferenceService as KServe reports it (what an ingress routes on)."""
    return urlsplit(bed["summary"]["url"]).netloc


def _predictions(bed) -> list[dict]:
    with open(bed["summary"]["predictions"]["path"], encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_pipeline_outputs(bed):
    summary = bed["summary"]
    assert summary["storage_uri"] == f"s3://{BUCKET}/{PREFIX}"
    # What KServe's controller reports with kserve_inference_entry none (the default): the predictor's in-cluster address
    assert summary["url"] == f"http://{MODEL}-predictor.{NAMESPACE}.svc.cluster.local"
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
    # KServe's controller reconciled it (Standard mode, our ClusterServingRuntime) into a predictor Deployment
    # that runs as the storage ServiceAccount with the storage URI of the published repository.
    status = isvc["status"]
    assert status["observedGeneration"] == meta["generation"]
    assert status["clusterServingRuntimeName"] == RUNTIME and status["deploymentMode"] == "Standard"
    assert status["url"] == bed["summary"]["url"]
    deployment = client.get(client.resources.get(api_version="apps/v1", kind="Deployment"), name=f"{MODEL}-predictor",
                            namespace=NAMESPACE).to_dict()
    template = deployment["spec"]["template"]
    assert template["spec"]["serviceAccountName"] == SA
    assert template["metadata"]["annotations"]["internal.serving.kserve.io/storage-initializer-sourceuri"] == f"s3://{BUCKET}/{PREFIX}"
    assert [c["image"] for c in template["spec"]["containers"]] == ["nvcr.io/nvidia/tritonserver:25.10-py3"]
    assert deployment["status"]["availableReplicas"] >= 1


def _can(api, verb: str, resource: str, namespace: str, group: str = "") -> bool:
    """What the API server's authorizer answers for the caller of ``api`` (SelfSubjectAccessReview)."""
    from kubernetes.client import AuthorizationV1Api  # noqa: PLC0415

    review = {"spec": {"resourceAttributes": {"verb": verb, "resource": resource, "group": group, "namespace": namespace}}}
    return AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed


def test_deployer_kubeconfig_is_least_privilege(bed):
    """The kubeconfig the serve step used: a bound ServiceAccount token allowed InferenceServices in models, nothing else."""
    from kubernetes import config as k8s_config  # noqa: PLC0415
    from kubernetes.client import AuthenticationV1Api, CoreV1Api  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    doc = bed["iris"].deployer_kubeconfig()
    user = doc["users"][0]["user"]
    assert user.get("token") and "client-certificate-data" not in user
    api = k8s_config.new_client_from_config_dict(doc)
    who = AuthenticationV1Api(api).create_self_subject_review({}).status.user_info
    assert who.username == f"system:serviceaccount:{NAMESPACE}:{DEPLOYER}"
    # What the serve step does: server-side apply (patch), get and watch InferenceServices in the models namespace.
    for verb in ("get", "list", "watch", "create", "patch", "update", "delete"):
        assert _can(api, verb, "inferenceservices", NAMESPACE, "serving.kserve.io"), verb
    # Nothing else: not the S3 Secret next to it, not pods, not InferenceServices of another namespace.
    assert not _can(api, "get", "secrets", NAMESPACE)
    assert not _can(api, "create", "pods", NAMESPACE)
    assert not _can(api, "create", "inferenceservices", "default", "serving.kserve.io")
    assert not _can(api, "patch", "servingruntimes", NAMESPACE, "serving.kserve.io")
    with pytest.raises(ApiException) as denied:
        CoreV1Api(api).read_namespaced_secret("kserve-s3", NAMESPACE)
    assert denied.value.status == 403


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


def test_v2_inference_json_and_binary(v2_server, isvc_host):
    infer.wait_ready(v2_server, MODEL, timeout=30)
    expected = ["setosa", "versicolor", "virginica"]
    by_json = infer.infer_json(v2_server, MODEL, infer.SAMPLE_ROWS)
    by_binary = infer.infer_binary(v2_server, MODEL, infer.SAMPLE_ROWS)
    assert [r["class"] for r in by_json] == expected
    assert [r["class"] for r in by_binary] == expected
    np.testing.assert_allclose([r["probabilities"] for r in by_json], [r["probabilities"] for r in by_binary], atol=1e-6)
    # KServe ingress style: the InferenceService host name in the Host header
    hosted = infer.infer_binary(v2_server, MODEL, infer.SAMPLE_ROWS, host=isvc_host)
    assert [r["class"] for r in hosted] == expected


def test_infer_cli(v2_server, bed, isvc_host):
    argv = [sys.executable, IRIS / "infer.py", "--url", v2_server, "--host", isvc_host, "--protocol", "both",
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


def test_triton_serves_the_published_version_and_counts_the_requests(triton_server, store):
    """Triton itself read config.pbtxt and the model from s3://, and its metrics count what it answered."""
    with urllib.request.urlopen(f"{triton_server.url}/v2/models/{MODEL}", timeout=10) as resp:
        meta = json.load(resp)
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == ["input"]
    with urllib.request.urlopen(f"{triton_server.url}/v2/models/{MODEL}/config", timeout=10) as resp:
        config = json.load(resp)
    assert config["max_batch_size"] == 16 and config["backend"] == "onnxruntime"
    before = triton_server.metric("nv_inference_count", model=MODEL, version="1")
    rows = infer.infer_json(triton_server.url, MODEL, infer.SAMPLE_ROWS)
    assert [r["class"] for r in rows] == CLASS_NAMES
    deadline = time.monotonic() + 30
    while triton_server.metric("nv_inference_count", model=MODEL, version="1") < before + len(infer.SAMPLE_ROWS):
        assert time.monotonic() < deadline, triton_server.metrics()
        time.sleep(0.5)
    assert triton_server.metric("nv_inference_request_failure", model=MODEL) == 0


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
