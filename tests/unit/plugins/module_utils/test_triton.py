"""Unit tests for plugins/module_utils/triton.py (ONNX -> config.pbtxt -> publish)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2

from ansible_collections.nga4m.platform.plugins.module_utils import triton
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import LocalStore
from tests.helpers import onnx_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("onnx")
    return {
        "dynamic": onnx_models.dynamic_batch_classifier(base / "dynamic.onnx"),
        "fixed": onnx_models.fixed_batch_classifier(base / "fixed.onnx"),
        "other": onnx_models.iris_classifier(base / "other.onnx", input_name="features"),
    }


@pytest.fixture(scope="module")
def dyn(models):
    return triton.read_onnx(str(models["dynamic"]))


def _dtype_model(path, elem, shape):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("y", elem, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    import onnx  # noqa: PLC0415

    onnx.save_model(model, str(path))
    return triton.read_onnx(str(path))


# ------------------------------------------------------------------ ONNX -> config derivation

def test_read_onnx_graph_io(dyn):
    assert [t.as_dict() for t in dyn.inputs] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
    assert [(t.name, t.data_type, t.dims) for t in dyn.outputs] == [
        ("probabilities", "TYPE_FP32", [-1, 3]),
        ("label", "TYPE_INT64", [-1, 1]),
    ]
    assert len(dyn.sha256) == 64


def test_initializers_are_not_inputs(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("w", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    import onnx  # noqa: PLC0415

    onnx.save_model(model, str(tmp_path / "m.onnx"))
    info = triton.read_onnx(str(tmp_path / "m.onnx"))
    assert [t.name for t in info.inputs] == ["x"]


@pytest.mark.parametrize(
    "elem, expected",
    [
        (TensorProto.FLOAT, "TYPE_FP32"),
        (TensorProto.DOUBLE, "TYPE_FP64"),
        (TensorProto.FLOAT16, "TYPE_FP16"),
        (TensorProto.INT32, "TYPE_INT32"),
        (TensorProto.INT64, "TYPE_INT64"),
        (TensorProto.UINT8, "TYPE_UINT8"),
        (TensorProto.BOOL, "TYPE_BOOL"),
        (TensorProto.STRING, "TYPE_STRING"),
    ],
)
def test_dtype_mapping(tmp_path, elem, expected):
    info = _dtype_model(tmp_path / "m.onnx", elem, ["n", 2])
    assert info.inputs[0].data_type == expected
    config = triton.build_config("m", info, {})
    assert config["input"][0]["data_type"] == expected


def test_no_batching_keeps_first_dim(dyn):
    config = triton.build_config("iris", dyn, {"max_batch_size": 0})
    assert config["max_batch_size"] == 0
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
    assert config["platform"] == "onnxruntime_onnx" and config["backend"] == "onnxruntime"


def test_batching_drops_dynamic_batch_dim(dyn):
    config = triton.build_config("iris", dyn, {"max_batch_size": 16})
    assert config["input"][0]["dims"] == [4]
    assert [o["dims"] for o in config["output"]] == [[3], [1]]


def test_dynamic_inner_dims_become_minus_one(tmp_path):
    info = _dtype_model(tmp_path / "m.onnx", TensorProto.FLOAT, ["batch", "seq", 8])
    config = triton.build_config("m", info, {"max_batch_size": 4})
    assert config["input"][0]["dims"] == [-1, 8]


def test_batching_with_fixed_batch_dim_is_refused(models):
    info = triton.read_onnx(str(models["fixed"]))
    with pytest.raises(NGA4MError, match=r"max_batch_size is 8 but input 'input' has a fixed first dimension 1"):
        triton.build_config("iris", info, {"max_batch_size": 8})
    # without batching the fixed model is fine
    assert triton.build_config("iris", info, {})["input"][0]["dims"] == [1, 4]


def test_options_override_and_fill_from_graph(dyn):
    options = {
        "max_batch_size": 8,
        "inputs": [{"name": "input"}],  # data_type/dims read from the graph
        "outputs": [{"name": "probabilities", "data_type": "FP32", "dims": [3]}],  # subset, short type name
        "instance_group": [{"count": 2, "kind": "KIND_GPU", "gpus": [0]}],
        "dynamic_batching": {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100},
        "version_policy": {"specific": [1, 3]},
    }
    config = triton.build_config("iris", dyn, options)
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}]
    assert config["output"] == [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [3]}]
    assert config["instance_group"] == [{"count": 2, "kind": "KIND_GPU", "gpus": [0]}]
    assert config["dynamic_batching"] == {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100}
    assert config["version_policy"] == {"specific": {"versions": [1, 3]}}
    text = triton.render_config(config)
    triton.check_config(text, dyn, "iris")


@pytest.mark.parametrize(
    "policy, expected",
    [({"latest": 2}, {"latest": {"num_versions": 2}}), ({"all": True}, {"all": {}}), ({"specific": [2]}, {"specific": {"versions": [2]}})],
)
def test_version_policy(dyn, policy, expected):
    config = triton.build_config("iris", dyn, {"version_policy": policy})
    assert config["version_policy"] == expected
    message = triton.parse_config(triton.render_config(config))
    assert message.version_policy.WhichOneof("policy_choice") == next(iter(expected))


# ------------------------------------------------------------------ pbtxt round trip

def test_pbtxt_round_trip_through_model_config(dyn):
    config, text = triton.prepare_config("iris", dyn, {"max_batch_size": 8, "instance_group": [{"count": 1, "kind": "KIND_CPU"}]})
    message = triton.parse_config(text)
    assert isinstance(message, model_config_pb2.ModelConfig)
    assert message.name == "iris"
    assert message.platform == "onnxruntime_onnx"
    assert message.max_batch_size == 8
    assert message.input[0].data_type == model_config_pb2.TYPE_FP32
    assert list(message.input[0].dims) == [4]
    assert message.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    # canonical: rendering the parsed message gives the same text; dict survives the trip
    assert triton.render_config(message) == text
    assert triton.config_message_to_dict(message) == config
    assert 'platform: "onnxruntime_onnx"' in text and "dims: 4" in text


def test_parse_config_rejects_garbage():
    with pytest.raises(NGA4MError, match="not a valid Triton ModelConfig"):
        triton.parse_config("name: 'x'\nnot_a_field: 3\n")


# ------------------------------------------------------------------ cross-check messages

def _config_text(**overrides):
    base = {
        "name": "iris",
        "platform": "onnxruntime_onnx",
        "max_batch_size": 8,
        "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}],
        "output": [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [3]}],
    }
    base.update(overrides)
    return triton.render_config(base)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": "other"}, "config name 'other' must equal the model directory name 'iris'"),
        ({"input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}, {"name": "extra", "data_type": "TYPE_FP32", "dims": [1]}]},
         "input 'extra' is not in the ONNX graph (graph inputs: input)"),
        ({"output": [{"name": "scores", "data_type": "TYPE_FP32", "dims": [3]}]}, "output 'scores' is not in the ONNX graph"),
        ({"input": [{"name": "input", "data_type": "TYPE_FP64", "dims": [4]}]},
         "input 'input': data_type TYPE_FP64 in config but TYPE_FP32 in the ONNX graph"),
        ({"output": [{"name": "label", "data_type": "TYPE_INT32", "dims": [1]}]},
         "output 'label': data_type TYPE_INT32 in config but TYPE_INT64 in the ONNX graph"),
        ({"input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [5]}]},
         "input 'input': dims [5] in config do not match [-1 (batch)] + [4] in the ONNX graph"),
        ({"input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [4, 1]}]}, "input 'input': dims [4, 1] in config do not match"),
        ({"input": []}, "input 'input' of the ONNX graph is missing from the config inputs"),
        ({"platform": "tensorflow_savedmodel"}, "config must use platform 'onnxruntime_onnx'"),
        ({"max_batch_size": 0, "dynamic_batching": {}}, "dynamic_batching needs max_batch_size > 0"),
    ],
)
def test_cross_check_mismatch_names_the_tensor(dyn, overrides, message):
    with pytest.raises(NGA4MError) as err:
        triton.check_config(_config_text(**overrides), dyn, "iris")
    assert message in str(err.value)


def test_cross_check_fixed_batch_dim(models):
    info = triton.read_onnx(str(models["fixed"]))
    with pytest.raises(NGA4MError, match="input 'input': max_batch_size is 8 but the ONNX graph fixes the first dimension"):
        triton.check_config(_config_text(), info, "iris")


def test_cross_check_accepts_matching_config(dyn):
    triton.check_config(_config_text(), dyn, "iris")


def test_cross_check_reports_all_problems(dyn):
    with pytest.raises(NGA4MError) as err:
        triton.check_config(_config_text(name="x", input=[{"name": "input", "data_type": "TYPE_INT8", "dims": [4]}]), dyn, "iris")
    assert "config name 'x'" in str(err.value) and "data_type TYPE_INT8" in str(err.value)


# ------------------------------------------------------------------ option validation

@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_batch_size": -1}, "max_batch_size must be >= 0, got -1"),
        ({"inputs": [{"name": "input", "data_type": "TYPE_FLOAT"}]}, "unknown data_type 'TYPE_FLOAT' for input 'input'"),
        ({"inputs": [{"name": "nope"}]}, "input 'nope' is not in the ONNX graph (graph inputs: input)"),
        ({"inputs": [{"name": "input", "dims": [0]}]}, "dims of input 'input' must be positive integers or -1"),
        ({"instance_group": [{"kind": "KIND_TPU"}]}, "instance_group kind 'KIND_TPU' is invalid"),
        ({"instance_group": [{"count": 0}]}, "instance_group count must be >= 1"),
        ({"dynamic_batching": {"preferred_batch_size": [4]}}, "dynamic_batching needs max_batch_size > 0"),
        ({"max_batch_size": 2, "dynamic_batching": {"preferred_batch_size": [4]}}, "exceeds max_batch_size 2"),
        ({"version_policy": {"latest": 1, "all": True}}, "version_policy takes exactly one of"),
    ],
)
def test_option_validation(dyn, options, message):
    with pytest.raises(NGA4MError) as err:
        triton.build_config("iris", dyn, options)
    assert message in str(err.value)


@pytest.mark.parametrize("name", ["iris/v2", "../x", ".hidden", "", "a b", "x" * 256])
def test_bad_model_names(name):
    with pytest.raises(NGA4MError, match="invalid model name"):
        triton.validate_model_name(name)


@pytest.mark.parametrize("version", [0, -1, "abc", 1.5, True, None])
def test_bad_versions(version):
    with pytest.raises(NGA4MError, match="version must be a positive integer"):
        triton.validate_version(version)


def test_model_file_errors(tmp_path):
    with pytest.raises(NGA4MError, match="does not exist"):
        triton.read_onnx(str(tmp_path / "missing.onnx"))
    (tmp_path / "text.onnx").write_text("this is not an onnx model\n")
    with pytest.raises(NGA4MError, match="is not a valid ONNX model"):
        triton.read_onnx(str(tmp_path / "text.onnx"))
    good = onnx_models.iris_classifier(tmp_path / "good.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    with pytest.raises(NGA4MError, match="is not a valid ONNX model"):
        triton.read_onnx(str(tmp_path / "cut.onnx"))
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(NGA4MError, match="is empty"):
        triton.read_onnx(str(tmp_path / "empty.onnx"))


# ------------------------------------------------------------------ LocalStore publish

def _publish(root, model, **kw):
    args = {"prefix": "repo", "model_name": "iris", "version": 1, "model_path": str(model), "config_options": {"max_batch_size": 4}}
    args.update(kw)
    return triton.publish(LocalStore(root), **args)


def test_local_publish_layout_and_idempotence(tmp_path, models):
    root = tmp_path / "models"
    first = _publish(root, models["dynamic"])
    assert first["changed"] is True
    assert first["uploaded"] == ["repo/iris/1/model.onnx", "repo/iris/config.pbtxt"]
    assert (root / "repo/iris/1/model.onnx").read_bytes() == models["dynamic"].read_bytes()
    text = (root / "repo/iris/config.pbtxt").read_text()
    assert text == first["config"]
    triton.check_config(text, triton.read_onnx(str(models["dynamic"])), "iris")
    assert first["storage_uri"] == str(root / "repo")
    assert first["model_path"] == str(root / "repo/iris")
    assert first["diff"]["before"] == "" and first["diff"]["after"] == text

    mtime = os.stat(root / "repo/iris/1/model.onnx").st_mtime_ns
    second = _publish(root, models["dynamic"])
    assert second["changed"] is False and second["uploaded"] == [] and second["plan"] == []
    assert os.stat(root / "repo/iris/1/model.onnx").st_mtime_ns == mtime

    # config change only: config rewritten, model untouched
    third = _publish(root, models["dynamic"], config_options={"max_batch_size": 8})
    assert third["uploaded"] == ["repo/iris/config.pbtxt"]
    assert "max_batch_size: 4" in third["diff"]["before"] and "max_batch_size: 8" in third["diff"]["after"]

    # model change only: model rewritten first
    fourth = _publish(root, models["other"], config_options={"max_batch_size": 8, "inputs": [{"name": "features"}]})
    assert fourth["uploaded"][0] == "repo/iris/1/model.onnx"


def test_local_check_mode_writes_nothing(tmp_path, models):
    root = tmp_path / "models"
    result = _publish(root, models["dynamic"], check_mode=True)
    assert result["changed"] is True and result["uploaded"] == []
    assert [step["key"] for step in result["plan"] if step["action"] == "upload"] == ["repo/iris/1/model.onnx", "repo/iris/config.pbtxt"]
    assert not root.exists()
    _publish(root, models["dynamic"])
    again = _publish(root, models["dynamic"], check_mode=True)
    assert again["changed"] is False


def test_local_absent_removes_version_then_model_dir(tmp_path, models):
    root = tmp_path / "models"
    _publish(root, models["dynamic"], version=1)
    _publish(root, models["dynamic"], version=2)
    check = _publish(root, models["dynamic"], version=1, state="absent", check_mode=True)
    assert check["changed"] is True and (root / "repo/iris/1/model.onnx").exists()

    gone1 = _publish(root, models["dynamic"], version=1, state="absent")
    assert gone1["deleted"] == ["repo/iris/1/model.onnx"]
    assert not (root / "repo/iris/1").exists() and (root / "repo/iris/config.pbtxt").exists()
    assert _publish(root, models["dynamic"], version=1, state="absent")["changed"] is False

    gone2 = _publish(root, models["dynamic"], version=2, state="absent")
    assert gone2["deleted"] == ["repo/iris/config.pbtxt", "repo/iris/2/model.onnx"]
    assert gone2["diff"]["after"] == ""
    assert not (root / "repo/iris").exists()
    assert _publish(root, models["dynamic"], version=2, state="absent")["changed"] is False


def test_publish_validates_before_writing(tmp_path, models):
    root = tmp_path / "models"
    with pytest.raises(NGA4MError, match="input 'input': data_type"):
        _publish(root, models["dynamic"], config_options={"inputs": [{"name": "input", "data_type": "TYPE_INT32"}]})
    with pytest.raises(NGA4MError, match="must not contain '.' or '..'"):
        _publish(root, models["dynamic"], prefix="a/../b")
    assert not root.exists()


def test_publish_failure_keeps_config_unwritten(tmp_path, models):
    class FailingConfigStore(LocalStore):
        def put_bytes(self, key, data, content_type="application/octet-stream"):
            raise NGA4MError("disk full")

    store = FailingConfigStore(tmp_path / "models")
    with pytest.raises(NGA4MError) as err:
        triton.publish(store, "", "iris", 1, str(models["dynamic"]), {})
    assert "Written before the failure: iris/1/model.onnx" in str(err.value) and "disk full" in str(err.value)
    assert store.list("") == ["iris/1/model.onnx"]
    result = triton.publish(LocalStore(tmp_path / "models"), "", "iris", 1, str(models["dynamic"]), {})
    assert result["uploaded"] == ["iris/config.pbtxt"]


# ------------------------------------------------------------------ 1-D batched outputs (Triton reshape)

def test_batched_vector_output_is_declared_with_reshape(tmp_path):
    model = onnx_models.vector_label_classifier(tmp_path / "vector.onnx")
    info = triton.read_onnx(str(model))
    assert [(t.name, t.dims) for t in info.outputs] == [("probabilities", [-1, 3]), ("label", [-1])]
    result = _publish(tmp_path / "models", model, config_options={"max_batch_size": 8})
    label = next(t for t in result["config_dict"]["output"] if t["name"] == "label")
    assert label == {"name": "label", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}}
    text = (tmp_path / "models/repo/iris/config.pbtxt").read_text()
    message = triton.parse_config(text)
    assert message.output[1].HasField("reshape") and list(message.output[1].reshape.shape) == []
    triton.check_config(text, info, "iris")
    assert triton.config_message_to_dict(message)["output"][1]["reshape"] == {}
    # the model really produces one label per row, which Triton returns as [batch, 1]
    probabilities, labels = onnx_models.run(model, {"input": np.ones((3, 4), dtype=np.float32)})
    assert probabilities.shape == (3, 3) and labels.shape == (3,)


def test_explicit_reshape_is_checked_against_the_graph(dyn):
    config = triton.build_config("iris", dyn, {"max_batch_size": 4, "inputs": [{"name": "input", "dims": [2, 2], "reshape": [4]}]})
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [2, 2], "reshape": {"shape": [4]}}]
    triton.check_config(config, dyn, "iris")
    with pytest.raises(NGA4MError, match=r"input 'input': reshape \[5\] holds 5 elements but dims \[2, 2\] hold 4"):
        triton.check_config(dict(config, input=[dict(config["input"][0], reshape={"shape": [5]})]), dyn)
    with pytest.raises(NGA4MError, match=r"input 'input': reshape \[2, 2\] in config do not match \[-1 \(batch\)\] \+ \[4\]"):
        triton.check_config(dict(config, input=[dict(config["input"][0], dims=[4], reshape={"shape": [2, 2]})]), dyn)
    with pytest.raises(NGA4MError, match="reshape of input 'input' needs its dims too"):
        triton.build_config("iris", dyn, {"inputs": [{"name": "input", "reshape": [4]}]})


# ------------------------------------------------------------------ one config.pbtxt for every version

def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_version_with_another_interface_is_refused_before_anything_is_written(tmp_path, models):
    root = tmp_path / "models"
    _publish(root, models["dynamic"], version=1)
    before = {name: (root / name).read_bytes() for name in _tree(root)}
    with pytest.raises(NGA4MError) as err:
        _publish(root, models["other"], version=2, config_options={"max_batch_size": 0})
    message = str(err.value)
    assert "does not fit the config.pbtxt that versions [1] are served with" in message
    for change in ("max_batch_size 4 -> 0", "input 'features' added", "input 'input' removed",
                   "output 'probabilities': dims [3] -> [-1, 3]"):
        assert change in message
    assert "retire_versions" in message
    assert {name: (root / name).read_bytes() for name in _tree(root)} == before
    # the same interface is fine for a new version, with any batch size (the dims stay the same)
    assert _publish(root, models["dynamic"], version=2, config_options={"max_batch_size": 16})["retired"] == []
    assert _tree(root) == ["repo/iris/1/model.onnx", "repo/iris/2/model.onnx", "repo/iris/config.pbtxt"]


def test_retire_versions_writes_the_new_version_first_and_removes_the_others_after(tmp_path, models):
    root = tmp_path / "models"
    _publish(root, models["dynamic"], version=1)
    _publish(root, models["dynamic"], version=2)
    check = _publish(root, models["other"], version=3, retire_versions=True, check_mode=True)
    assert check["changed"] is True and check["retired"] == [1, 2]
    assert [(s["action"], s["key"]) for s in check["plan"]] == [
        ("upload", "repo/iris/3/model.onnx"), ("upload", "repo/iris/config.pbtxt"),
        ("delete", "repo/iris/1/model.onnx"), ("delete", "repo/iris/2/model.onnx"),
    ]
    assert "input 'features' is not in the ONNX graph" in check["plan"][2]["reason"]
    assert _tree(root) == ["repo/iris/1/model.onnx", "repo/iris/2/model.onnx", "repo/iris/config.pbtxt"]

    done = _publish(root, models["other"], version=3, retire_versions=True)
    assert done["uploaded"] == ["repo/iris/3/model.onnx", "repo/iris/config.pbtxt"]
    assert done["deleted"] == ["repo/iris/1/model.onnx", "repo/iris/2/model.onnx"] and done["retired"] == [1, 2]
    assert _tree(root) == ["repo/iris/3/model.onnx", "repo/iris/config.pbtxt"]
    triton.check_config((root / "repo/iris/config.pbtxt").read_text(), triton.read_onnx(str(models["other"])), "iris")
    again = _publish(root, models["other"], version=3, retire_versions=True)
    assert again["changed"] is False and again["plan"] == []


def test_retire_versions_keeps_the_versions_that_still_fit(tmp_path, models):
    root = tmp_path / "models"
    retrained = onnx_models.retrained_iris_classifier(tmp_path / "retrained.onnx")
    _publish(root, models["dynamic"], version=1)
    result = _publish(root, retrained, version=2, retire_versions=True)
    assert result["retired"] == [] and result["deleted"] == []
    assert _tree(root) == ["repo/iris/1/model.onnx", "repo/iris/2/model.onnx", "repo/iris/config.pbtxt"]


def test_an_interrupted_retirement_finishes_on_the_next_run(tmp_path, models):
    class FailingDeleteStore(LocalStore):
        def delete(self, key):
            raise NGA4MError("permission denied")

    root = tmp_path / "models"
    _publish(root, models["dynamic"], version=1)
    with pytest.raises(NGA4MError) as err:
        triton.publish(FailingDeleteStore(root), "repo", "iris", 2, str(models["other"]), {"max_batch_size": 4}, retire_versions=True)
    assert "Written before the failure: repo/iris/2/model.onnx, repo/iris/config.pbtxt;" in str(err.value)
    # the config now fits version 2, which is there; version 1 no longer fits and is still there
    triton.check_config((root / "repo/iris/config.pbtxt").read_text(), triton.read_onnx(str(models["other"])), "iris")
    rerun = _publish(root, models["other"], version=2, retire_versions=True)
    assert rerun["uploaded"] == [] and rerun["deleted"] == ["repo/iris/1/model.onnx"]
    assert _tree(root) == ["repo/iris/2/model.onnx", "repo/iris/config.pbtxt"]
