# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NGA4M's small Python-based Triton backend named ``onnxruntime`` (ours, not NVIDIA's).

The ``tritonserver`` that PyPI's ``nvidia-pytriton`` ships is the real Triton
Inference Server with the Python backend only: it has no ONNX Runtime backend. Triton
loads a *Python-based backend* from ``<backend-directory>/<name>/model.py``, and maps a
model's ``platform: "onnxruntime_onnx"`` to the backend ``onnxruntime``. So with this
file as ``<backend-directory>/onnxruntime/model.py``, the real Triton loads a repository
published by ``nga4m.platform.triton_model_repository`` **unchanged**: Triton itself
reads and checks ``config.pbtxt``, polls the repository (a directory or ``s3://``),
schedules, batches, serves v2 REST and gRPC and exports its ``nv_inference_*`` metrics;
this backend only runs ``<version>/model.onnx`` (or ``default_model_filename``) with
onnxruntime on the CPU for each request.

What it honours of the model configuration: the inputs and outputs by name, their
``data_type``, ``max_batch_size`` (the batch dimension comes with each request) and
``reshape`` on inputs and outputs (a batched 1-D output such as ``label`` [N] is
declared ``dims: [1]`` with ``reshape: { shape: [] }``). Everything else is Triton's.

The Python backend stub embeds the system's Python and ignores PYTHONPATH; the
``NGA4M_TRITON_PYTHONPATH`` environment variable (set by the launcher,
``examples/iris/serve_triton.py``) names the directory that holds the numpy (1.x, which
the stub is built against) and onnxruntime installed beside the server by
``tools/tritonserver``; it is put first on ``sys.path`` here before they are imported.
"""

import json
import os
import sys

for _entry in reversed([e for e in os.environ.get("NGA4M_TRITON_PYTHONPATH", "").split(os.pathsep) if e]):
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

import numpy as np  # noqa: E402  pylint: disable=wrong-import-position
import onnxruntime as ort  # noqa: E402  pylint: disable=wrong-import-position
import triton_python_backend_utils as pb_utils  # noqa: E402  pylint: disable=wrong-import-position,import-error


def _model_file(args, config):
    """Path of the ONNX file of the version Triton is loading."""
    name = config.get("default_model_filename") or "model.onnx"
    return os.path.join(args["model_repository"], str(args["model_version"]), name)


class TritonPythonModel:
    """One onnxruntime session per model instance."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [(t["name"], t.get("reshape", {}).get("shape")) for t in config.get("input", [])]
        self.outputs = []
        for tensor in config.get("output", []):
            dtype = pb_utils.triton_string_to_numpy(tensor["data_type"])
            self.outputs.append((tensor["name"], dtype, [int(d) for d in tensor.get("dims", [])],
                                 "reshape" in tensor))
        path = _model_file(args, config)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        graph_outputs = {o.name for o in self.session.get_outputs()}
        missing = [name for name, _d, _s, _r in self.outputs if name not in graph_outputs]
        if missing:
            raise pb_utils.TritonModelException(f"{path}: the graph has no output(s) {missing} named in config.pbtxt")

    def _feeds(self, request):
        feeds = {}
        for name, reshape in self.inputs:
            array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
            if reshape is not None:
                lead = list(array.shape[:1]) if self.batched else []
                array = array.reshape(lead + [int(d) for d in reshape])
            feeds[name] = array
        return feeds

    def execute(self, requests):
        responses = []
        names = [name for name, _d, _s, _r in self.outputs]
        for request in requests:
            try:
                results = self.session.run(names, self._feeds(request))
            except Exception as exc:  # pylint: disable=broad-except
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
                continue
            tensors = []
            for (name, dtype, dims, reshaped), value in zip(self.outputs, results):
                value = np.asarray(value)
                if reshaped:
                    lead = list(value.shape[:1]) if self.batched else []
                    value = value.reshape(lead + dims)
                tensors.append(pb_utils.Tensor(name, value.astype(dtype, copy=False)))
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        self.session = None
