"""triton_model_repository against a real S3 server (MinIO on loopback, tests/helpers/s3.py) through ansible-playbook."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from ansible_collections.nga4m.platform.plugins.module_utils import triton
from tests.helpers import onnx_models
from tests.helpers.playbook import run_playbook
from tests.helpers.s3 import FaultProxy, S3Server, drop_put_of

PLAYBOOK = Path(__file__).parent / "playbooks" / "triton_publish.yml"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    return onnx_models.iris_classifier(tmp_path_factory.mktemp("models") / "iris.onnx")


def _publish(s3, bucket, model, check=False, diff=False, endpoint=None, **args):
    tmr = {
        "name": "iris",
        "version": 1,
        "model_file": str(model),
        "prefix": "triton",
        "max_batch_size": 8,
        "dynamic_batching": {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100},
        "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
        **s3.options(bucket, endpoint=endpoint),
        "create_bucket": True,
    }
    tmr.update(args)
    run = run_playbook(PLAYBOOK, extra_vars={"tmr": tmr}, check=check, diff=diff)
    return run, run.result("Publish model")


def _ok(run, res):
    assert run.rc == 0, f"{res}\n{run.stderr[-3000:]}"
    return res


def _objects(s3, bucket):
    client = s3.client()
    return {o.object_name: (o.etag, o.last_modified) for o in client.list_objects(bucket, recursive=True)}


def _assert_no_config_without_model(s3, bucket, tmp_path, prefix="triton"):
    """Every stored config.pbtxt has its model: a version directory with model.onnx that the config matches.

    Returns ``{config key: config text}``.
    """
    client = s3.client()
    keys = sorted(o.object_name for o in client.list_objects(bucket, prefix=prefix + "/", recursive=True))
    configs = {}
    for key in (k for k in keys if k.endswith("/config.pbtxt")):
        model_dir = key.rsplit("/", 1)[0]
        text = client.get_object(bucket, key).read().decode()
        message = triton.parse_config(text)
        versions = sorted(
            int(k[len(model_dir) + 1:].split("/", 1)[0])
            for k in keys
            if k.startswith(model_dir + "/") and k.endswith("/model.onnx") and k[len(model_dir) + 1:].split("/", 1)[0].isdigit()
        )
        assert versions, f"{key} is stored but no {model_dir}/<version>/model.onnx is: {keys}"
        if message.version_policy.HasField("specific"):
            missing = sorted(set(message.version_policy.specific.versions) - set(versions))
            assert not missing, f"{key} serves versions {missing} that have no model.onnx"
        # the version Triton would serve (latest) is a model this config describes
        local = tmp_path / f"stored-{bucket}-{versions[-1]}.onnx"
        local.write_bytes(client.get_object(bucket, f"{model_dir}/{versions[-1]}/model.onnx").read())
        triton.check_config(message, triton.read_onnx(str(local)), model_dir.rsplit("/", 1)[-1])
        configs[key] = text
    return configs


def test_publish_layout_idempotence_and_inference(s3, iris):
    bucket = "it-publish"
    res = _ok(*_publish(s3, bucket, iris, diff=True))
    assert res["changed"] is True
    assert res["uploaded"] == ["triton/iris/1/model.onnx", "triton/iris/config.pbtxt"]
    assert res["storage_uri"] == "s3://it-publish/triton"
    assert res["model_path"] == "triton/iris"
    assert res["version"] == 1
    assert res["sha256"] == triton.read_onnx(str(iris)).sha256
    assert res["diff"]["before"] == "" and res["diff"]["after"] == res["config"]
    assert res["config_dict"]["max_batch_size"] == 8

    objects = _objects(s3, bucket)
    assert sorted(objects) == ["triton/iris/1/model.onnx", "triton/iris/config.pbtxt"]
    client = s3.client()
    stat = client.stat_object(bucket, "triton/iris/1/model.onnx")
    assert stat.metadata["x-amz-meta-sha256"] == res["sha256"]

    # config.pbtxt parses with Triton's ModelConfig and matches the ONNX graph
    text = client.get_object(bucket, "triton/iris/config.pbtxt").read().decode()
    assert text == res["config"]
    message = triton.parse_config(text)
    assert message.name == "iris" and message.platform == "onnxruntime_onnx" and message.max_batch_size == 8
    assert [(i.name, list(i.dims)) for i in message.input] == [("input", [4])]
    assert [(o.name, list(o.dims)) for o in message.output] == [("probabilities", [3]), ("label", [1])]
    assert list(message.dynamic_batching.preferred_batch_size) == [4, 8]
    triton.check_config(message, triton.read_onnx(str(iris)), "iris")

    # the stored model runs and classifies the three iris samples
    import onnxruntime as ort  # noqa: PLC0415

    blob = client.get_object(bucket, "triton/iris/1/model.onnx").read()
    probs, labels = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"input": onnx_models.IRIS_SAMPLES})
    assert labels.ravel().tolist() == [0, 1, 2]
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    # second run, through a recording proxy: nothing changes and the server sees only reads
    with FaultProxy(s3.url) as proxy:
        again = _ok(*_publish(s3, bucket, iris, diff=True, endpoint=proxy.endpoint))
    assert again["changed"] is False and again["uploaded"] == [] and again["plan"] == []
    assert _objects(s3, bucket) == objects
    paths = [path.split("?", 1)[0] for _method, path in proxy.requests]
    assert f"/{bucket}/triton/iris/1/model.onnx" in paths and f"/{bucket}/triton/iris/config.pbtxt" in paths, proxy.requests
    writes = [(method, path) for method, path in proxy.requests if method not in ("GET", "HEAD")]
    assert writes == [], f"the unchanged run sent writes to the S3 server: {writes}"
    # the model is compared by its sha256 metadata (HEAD), never downloaded
    assert ("GET", f"/{bucket}/triton/iris/1/model.onnx") not in [(m, p.split("?", 1)[0]) for m, p in proxy.requests]


def test_check_mode_new_version_writes_nothing(s3, iris):
    bucket = "it-check"
    _ok(*_publish(s3, bucket, iris))
    before = _objects(s3, bucket)
    res = _ok(*_publish(s3, bucket, iris, check=True, diff=True, version=2, max_batch_size=4, dynamic_batching=None))
    assert res["changed"] is True and res["uploaded"] == []
    assert [(p["action"], p["key"]) for p in res["plan"]] == [("upload", "triton/iris/2/model.onnx"), ("upload", "triton/iris/config.pbtxt")]
    assert "max_batch_size: 8" in res["diff"]["before"] and "max_batch_size: 4" in res["diff"]["after"]
    assert _objects(s3, bucket) == before

    # check mode against a bucket that does not exist yet: reported, not created
    res = _ok(*_publish(s3, "it-check-new", iris, check=True))
    assert res["changed"] is True and res["plan"][0]["action"] == "create"
    assert not s3.client().bucket_exists("it-check-new")


def test_absent_removes_version_then_model_dir(s3, iris):
    bucket = "it-absent"
    _ok(*_publish(s3, bucket, iris, version=1))
    _ok(*_publish(s3, bucket, iris, version=2))
    assert sorted(_objects(s3, bucket)) == ["triton/iris/1/model.onnx", "triton/iris/2/model.onnx", "triton/iris/config.pbtxt"]

    res = _ok(*_publish(s3, bucket, iris, version=1, state="absent", check=True))
    assert res["changed"] is True and len(_objects(s3, bucket)) == 3

    res = _ok(*_publish(s3, bucket, iris, version=1, state="absent"))
    assert res["changed"] is True and res["deleted"] == ["triton/iris/1/model.onnx"]
    assert sorted(_objects(s3, bucket)) == ["triton/iris/2/model.onnx", "triton/iris/config.pbtxt"]

    res = _ok(*_publish(s3, bucket, iris, version=2, state="absent", diff=True))
    assert res["deleted"] == ["triton/iris/config.pbtxt", "triton/iris/2/model.onnx"]
    assert res["diff"]["after"] == "" and "name: \"iris\"" in res["diff"]["before"]
    assert _objects(s3, bucket) == {}

    res = _ok(*_publish(s3, bucket, iris, version=2, state="absent"))
    assert res["changed"] is False


def test_mid_publish_failure_never_leaves_config_without_model(s3, iris):
    bucket = "it-failure"
    s3.client().make_bucket(bucket)
    with FaultProxy(s3.url, fail_when=drop_put_of("/config.pbtxt")) as proxy:
        run, res = _publish(s3, bucket, iris, endpoint=proxy.endpoint)
        assert run.rc != 0 and res.get("failed") is True
        msg = res["msg"]
        assert "cannot reach S3 endpoint" in msg and "config.pbtxt" in msg
        assert "Written before the failure: triton/iris/1/model.onnx" in msg
        # fail_json, not a crash (ansible-core 2.19 adds exception="(traceback unavailable)" to fail_json)
        assert "Traceback" not in res.get("exception", "") and "Traceback" not in msg and "module_stderr" not in res
        assert proxy.dropped and all(p.endswith("/config.pbtxt") for _m, p in proxy.dropped)
        # the model arrived, no config points at anything
        assert sorted(_objects(s3, bucket)) == ["triton/iris/1/model.onnx"]

        proxy.fail_when = lambda method, path: False  # the "server" is back
        res = _ok(*_publish(s3, bucket, iris, endpoint=proxy.endpoint))
        assert res["changed"] is True and res["uploaded"] == ["triton/iris/config.pbtxt"]
        res = _ok(*_publish(s3, bucket, iris, endpoint=proxy.endpoint))
        assert res["changed"] is False and res["uploaded"] == []
    assert sorted(_objects(s3, bucket)) == ["triton/iris/1/model.onnx", "triton/iris/config.pbtxt"]
    text = s3.client().get_object(bucket, "triton/iris/config.pbtxt").read()
    triton.check_config(io.BytesIO(text).read(), triton.read_onnx(str(iris)), "iris")


# scenario id -> (publish v1 with the original model first?, version and options of the failing publish)
MODEL_UPLOAD_FAILURES = {
    "new_model": (False, {"version": 1}),
    "update_same_version": (True, {"version": 1}),
    "update_new_version": (True, {"version": 2, "max_batch_size": 4, "dynamic_batching": {"preferred_batch_size": [2, 4]}}),
}


@pytest.mark.parametrize("scenario", list(MODEL_UPLOAD_FAILURES))
def test_model_upload_failure_leaves_old_state_then_converges(s3, iris, tmp_path, scenario):
    """The server drops the model.onnx upload: the run fails clearly, config.pbtxt is untouched, a re-run converges."""
    existing, args = MODEL_UPLOAD_FAILURES[scenario]
    bucket = "it-model-fail-" + scenario.replace("_", "-")
    changed_model = onnx_models.retrained_iris_classifier(tmp_path / "iris-retrained.onnx")
    new_sha = triton.read_onnx(str(changed_model)).sha256
    version = args["version"]
    model_key = f"triton/iris/{version}/model.onnx"
    s3.client().make_bucket(bucket)
    old_config = old_sha = None
    if existing:
        first = _ok(*_publish(s3, bucket, iris, version=1))
        assert first["uploaded"] == ["triton/iris/1/model.onnx", "triton/iris/config.pbtxt"]
        old_config, old_sha = first["config"], first["sha256"]
        assert old_sha != new_sha
    before = _objects(s3, bucket)

    with FaultProxy(s3.url, fail_when=drop_put_of("/model.onnx")) as proxy:
        run, res = _publish(s3, bucket, changed_model, endpoint=proxy.endpoint, **args)
        assert run.rc != 0 and res.get("failed") is True, res
        msg = res["msg"]
        assert f"publishing iris version {version} to bucket '{bucket}'" in msg and "failed" in msg, msg
        assert "cannot reach S3 endpoint" in msg and model_key in msg, msg
        assert "Written before the failure: nothing" in msg and "run again" in msg, msg
        assert "Traceback" not in res.get("exception", "") and "Traceback" not in msg and "module_stderr" not in res
        assert proxy.dropped and all(m == "PUT" and p.split("?", 1)[0].endswith("/model.onnx") for m, p in proxy.dropped)
        assert not [p for m, p in proxy.requests if m in ("PUT", "POST") and "config.pbtxt" in p], "config.pbtxt was sent"

        # nothing changed on the server: no config without its model, the old config and model as they were
        assert _objects(s3, bucket) == before
        configs = _assert_no_config_without_model(s3, bucket, tmp_path)
        if existing:
            assert configs == {"triton/iris/config.pbtxt": old_config}
            assert s3.client().stat_object(bucket, "triton/iris/1/model.onnx").metadata["x-amz-meta-sha256"] == old_sha
        else:
            assert configs == {} and s3.keys(bucket) == []

        proxy.fail_when = lambda method, path: False  # the server is back
        res = _ok(*_publish(s3, bucket, changed_model, endpoint=proxy.endpoint, **args))
        assert res["changed"] is True and res["uploaded"][0] == model_key, res["uploaded"]
        expect_config = not existing or version != 1  # same-version update: same interface, same config.pbtxt
        assert res["uploaded"] == [model_key] + (["triton/iris/config.pbtxt"] if expect_config else []), res["uploaded"]
        res = _ok(*_publish(s3, bucket, changed_model, endpoint=proxy.endpoint, **args))
        assert res["changed"] is False and res["uploaded"] == [] and res["plan"] == []

    assert s3.client().stat_object(bucket, model_key).metadata["x-amz-meta-sha256"] == new_sha
    configs = _assert_no_config_without_model(s3, bucket, tmp_path)
    assert configs == {"triton/iris/config.pbtxt": res["config"]}
    if scenario == "update_new_version":
        assert "max_batch_size: 4" in res["config"] and res["config"] != old_config
        assert sorted(s3.keys(bucket)) == ["triton/iris/1/model.onnx", "triton/iris/2/model.onnx", "triton/iris/config.pbtxt"]


def test_a_new_interface_is_refused_beside_other_versions_unless_they_are_retired(s3, iris, tmp_path):
    bucket = "it-interface"
    renamed = onnx_models.iris_classifier(tmp_path / "features.onnx", input_name="features")
    _ok(*_publish(s3, bucket, iris, version=1))
    _ok(*_publish(s3, bucket, iris, version=2))
    before = _objects(s3, bucket)
    run, res = _publish(s3, bucket, renamed, version=3)
    assert run.rc != 0 and "input 'features' added; input 'input' removed" in res["msg"], res
    assert "retire_versions" in res["msg"] and "Traceback" not in run.stdout + run.stderr
    assert _objects(s3, bucket) == before

    check = _ok(*_publish(s3, bucket, renamed, version=3, retire_versions=True, check=True))
    assert check["retired"] == [1, 2] and _objects(s3, bucket) == before
    done = _ok(*_publish(s3, bucket, renamed, version=3, retire_versions=True))
    assert done["uploaded"] == ["triton/iris/3/model.onnx", "triton/iris/config.pbtxt"]
    assert done["deleted"] == ["triton/iris/1/model.onnx", "triton/iris/2/model.onnx"]
    assert sorted(_objects(s3, bucket)) == ["triton/iris/3/model.onnx", "triton/iris/config.pbtxt"]
    _assert_no_config_without_model(s3, bucket, tmp_path)
    assert _ok(*_publish(s3, bucket, renamed, version=3, retire_versions=True))["changed"] is False


def test_a_batched_model_with_a_vector_output_publishes_with_reshape(s3, tmp_path):
    bucket = "it-reshape"
    model = onnx_models.vector_label_classifier(tmp_path / "vector.onnx")
    res = _ok(*_publish(s3, bucket, model))
    message = triton.parse_config(s3.client().get_object(bucket, "triton/iris/config.pbtxt").read().decode())
    label = next(o for o in message.output if o.name == "label")
    assert list(label.dims) == [1] and label.HasField("reshape") and list(label.reshape.shape) == []
    assert res["config_dict"]["max_batch_size"] == 8
    _assert_no_config_without_model(s3, bucket, tmp_path)
