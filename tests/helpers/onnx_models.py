"""Build small real ONNX models with ``onnx.helper`` for tests and benchmarks.

All models pass ``onnx.checker`` and run in onnxruntime:

* ``iris_classifier(path, batch=None)`` - 4 float features -> 3 class
  probabilities (``probabilities`` FP32) and the arg-max class (``label`` INT64),
  a linear layer + softmax with hand-set weights that separate the iris classes
  by petal size. ``batch=None`` gives a dynamic batch dimension, an int a fixed one.
* ``fixed_batch_classifier(path)`` - the same with batch dimension fixed to 1.
* ``vector_label_classifier(path)`` - the same with a 1-D ``label`` [batch] (as
  skl2onnx exports classifiers): batched, it needs Triton's ``reshape``.
* ``retrained_iris_classifier(path)`` - the same graph (same inputs/outputs, so the
  same config.pbtxt) with other weights: a changed model file for update tests.
* ``large_model(path, size_mb=50)`` - a valid model carrying a ~size_mb MB
  float32 initializer (random, incompressible) for upload benchmarks.

The one exception, for bad-input tests: ``undefined_input_model(path)`` is
well-formed protobuf with typed graph inputs/outputs (what a quick read of the
graph's interface sees) but a node reading a tensor nothing defines, so
``onnx.checker`` rejects it. It is saved without the checker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IRIS_INPUT = "input"
IRIS_OUTPUTS = ("probabilities", "label")

# rows: sepal length, sepal width, petal length, petal width; columns: setosa, versicolor, virginica
IRIS_WEIGHTS = np.array(
    [
        [0.0, 0.0, 0.0],
        [1.0, 0.0, -1.0],
        [-2.0, 0.5, 1.5],
        [-3.0, 0.0, 3.0],
    ],
    dtype=np.float32,
)
IRIS_BIAS = np.array([6.0, 2.5, -7.0], dtype=np.float32)


def _save(model, path) -> Path:
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def iris_classifier(path, batch: int | str | None = None, input_name: str = IRIS_INPUT, weights=None, bias=None,
                    label_keepdims: bool = True) -> Path:
    """Iris-like classifier: ``input`` [batch, 4] FP32 -> ``probabilities`` [batch, 3], ``label`` [batch, 1] INT64
    (``label`` [batch] with ``label_keepdims=False``)."""
    dim = batch if batch is not None else "batch"
    weights = IRIS_WEIGHTS if weights is None else np.asarray(weights, dtype=np.float32)
    bias = IRIS_BIAS if bias is None else np.asarray(bias, dtype=np.float32)
    graph = helper.make_graph(
        nodes=[
            helper.make_node("MatMul", [input_name, "W"], ["logits_raw"]),
            helper.make_node("Add", ["logits_raw", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=int(label_keepdims)),
        ],
        name="iris",
        inputs=[helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [dim, 4])],
        outputs=[
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [dim, 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [dim, 1] if label_keepdims else [dim]),
        ],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nga4m-tests")
    model.ir_version = 8
    return _save(model, path)


def retrained_iris_classifier(path) -> Path:
    """The iris classifier with other weights: same interface (same config.pbtxt), different model file."""
    return iris_classifier(path, weights=IRIS_WEIGHTS * 2.0, bias=IRIS_BIAS * 2.0)


def undefined_input_model(path) -> Path:
    """A model ``onnx.checker`` rejects although its interface reads fine: ``Add`` reads an undefined tensor.

    Graph input ``input`` [batch, 4] FP32 and output ``probabilities`` [batch, 4] FP32
    are declared as for a real model; the node's second input ``undefined_bias`` is
    neither a graph input, an initializer nor a node output.
    """
    graph = helper.make_graph(
        nodes=[helper.make_node("Add", [IRIS_INPUT, "undefined_bias"], ["probabilities"])],
        name="broken",
        inputs=[helper.make_tensor_value_info(IRIS_INPUT, TensorProto.FLOAT, ["batch", 4])],
        outputs=[helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nga4m-tests")
    model.ir_version = 8
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))  # deliberately not _save(): the checker would refuse it
    return path


def fixed_batch_classifier(path) -> Path:
    """The iris classifier with its batch dimension fixed to 1."""
    return iris_classifier(path, batch=1)


def dynamic_batch_classifier(path) -> Path:
    """The iris classifier with a dynamic (symbolic) batch dimension."""
    return iris_classifier(path, batch=None)


def vector_label_classifier(path) -> Path:
    """The iris classifier whose ``label`` output is 1-D ([batch]), as skl2onnx exports classifiers."""
    return iris_classifier(path, label_keepdims=False)


def large_model(path, size_mb: float = 50, seed: int = 0) -> Path:
    """A valid model with a ~size_mb MB random float32 initializer: ``x`` [batch, 1] -> ``y`` = x + sum(big)."""
    count = int(size_mb * 1024 * 1024 // 4)
    rng = np.random.default_rng(seed)
    big = rng.standard_normal(count, dtype=np.float32)
    graph = helper.make_graph(
        nodes=[
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=1),
            helper.make_node("Add", ["x", "total"], ["y"]),
        ],
        name="large",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[numpy_helper.from_array(big, "big")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nga4m-bench")
    model.ir_version = 8
    return _save(model, path)


def run(path, feed: dict) -> list:
    """Run a model with onnxruntime (CPU) and return its outputs."""
    import onnxruntime as ort  # noqa: PLC0415 - heavy, only when needed

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


IRIS_SAMPLES = np.array(
    [
        [5.1, 3.5, 1.4, 0.2],  # setosa
        [6.4, 3.2, 4.5, 1.5],  # versicolor
        [6.3, 3.3, 6.0, 2.5],  # virginica
    ],
    dtype=np.float32,
)
