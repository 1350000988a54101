"""What the real Triton Inference Server makes of repositories the collection publishes.

Real: MinIO (tests/helpers/s3.py), the ``triton.publish`` code the module and the pipeline
use, and Triton 2.51 (tests/helpers/triton.py: nvidia-pytriton's tritonserver reading
``s3://`` with its own S3 client, polling every second) with our onnxruntime Python-based
backend. Triton itself parses each config.pbtxt and refuses what does not match.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import onnx_models
from tests.helpers.s3 import S3Server
from tests.helpers.triton import TritonServer

BUCKET = "nga4m-triton"
PREFIX = "models/triton"
ROWS = ((5.1, 3.5, 1.4, 0.2), (6.4, 3.2, 4.5, 1.5), (6.3, 3.3, 6.0, 2.5))


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    try:
        server.client().make_bucket(BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def store(s3):
    from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import open_store  # noqa: PLC0415

    return open_store(**s3.options(BUCKET))


def publish(store, name, version, path, **options):
    from ansible_collections.nga4m.platform.plugins.module_utils import triton  # noqa: PLC0415

    return triton.publish(store, PREFIX, name, version, model_path=str(path), config_options=options or None)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    work = tmp_path_factory.mktemp("models")
    return {"iris": onnx_models.iris_classifier(work / "iris.onnx"),
            "retrained": onnx_models.retrained_iris_classifier(work / "retrained.onnx"),
            "vector": onnx_models.vector_label_classifier(work / "vector.onnx")}


@pytest.fixture(scope="module")
def triton(s3, store, models, tmp_path_factory):
    publish(store, "iris", 1, models["iris"], max_batch_size=8)
    publish(store, "vector", 1, models["vector"], max_batch_size=8)
    with TritonServer(tmp_path_factory.mktemp("triton"), s3=s3, bucket=BUCKET, prefix=PREFIX, poll_secs=1) as server:
        yield server


def infer(server, model, rows=ROWS):
    body = json.dumps({"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP32",
                                   "data": [v for row in rows for v in row]}]}).encode()
    request = urllib.request.Request(f"{server.url}/v2/models/{model}/infer", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        answer = json.load(resp)
    return answer["model_version"], {o["name"]: o for o in answer["outputs"]}


def ready(server, model, version) -> bool:
    try:
        with urllib.request.urlopen(f"{server.url}/v2/models/{model}/versions/{version}/ready", timeout=5) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:
        return False


def test_the_published_model_answers_with_the_onnx_graph_results(triton, models):
    import numpy as np  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415

    version, outputs = infer(triton, "iris")
    assert version == "1"
    direct = ort.InferenceSession(str(models["iris"]), providers=["CPUExecutionProvider"])
    probabilities, labels = direct.run(["probabilities", "label"], {"input": np.array(ROWS, dtype=np.float32)})
    assert outputs["probabilities"]["shape"] == [3, 3] and outputs["probabilities"]["datatype"] == "FP32"
    np.testing.assert_allclose(outputs["probabilities"]["data"], probabilities.reshape(-1), rtol=1e-6)
    assert outputs["label"]["datatype"] == "INT64" and outputs["label"]["data"] == labels.reshape(-1).tolist()


def test_a_batched_one_dimensional_output_is_served_through_its_reshape(triton, store):
    """skl2onnx-style label [N]: published as dims [1] + reshape [] (Triton refuses the config otherwise)."""
    config = store.get(f"{PREFIX}/vector/config.pbtxt").decode()
    assert "reshape" in config
    _version, outputs = infer(triton, "vector")
    assert outputs["label"]["shape"] == [3, 1]
    assert len(outputs["label"]["data"]) == 3


def test_a_new_version_is_picked_up_from_the_bucket_and_served(triton, store, models):
    publish(store, "iris", 2, models["retrained"], max_batch_size=8)
    deadline = time.monotonic() + 60
    while not ready(triton, "iris", 2):
        assert time.monotonic() < deadline, triton.log_text()[-3000:]
        time.sleep(0.5)
    version, _outputs = infer(triton, "iris")
    assert version == "2"  # Triton's default version policy serves the latest
    deadline = time.monotonic() + 30
    while ready(triton, "iris", 1):
        assert time.monotonic() < deadline, "version 1 was not unloaded"
        time.sleep(0.5)


def test_a_config_that_does_not_match_the_model_is_refused_by_triton(triton, store, models):
    """Our config checks are not the only line: Triton itself refuses a tensor the graph does not have."""
    text = store.get(f"{PREFIX}/iris/config.pbtxt").decode().replace('name: "probabilities"', 'name: "probs"')
    store.put_bytes(f"{PREFIX}/broken/config.pbtxt", text.replace('name: "iris"', 'name: "broken"').encode())
    store.put_bytes(f"{PREFIX}/broken/1/model.onnx", models["iris"].read_bytes())
    deadline = time.monotonic() + 30
    state = {}
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{triton.url}/v2/repository/index", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=5) as resp:
            state = {m["name"]: m for m in json.load(resp)}
        if state.get("broken", {}).get("state") == "UNAVAILABLE":
            break
        time.sleep(0.5)
    assert state["broken"]["state"] == "UNAVAILABLE", state
    assert "probs" in state["broken"].get("reason", ""), state["broken"]
    assert not ready(triton, "broken", 1)
