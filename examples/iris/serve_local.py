# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local Open Inference Protocol (v2) server for a model published in Triton layout.

Not Triton: the ``kserve`` package's ``ModelServer`` with a small onnxruntime
``Model`` that reads ``<prefix>/<model>/config.pbtxt`` (parsed with the
collection's ``triton.parse_config``) and ``<prefix>/<model>/<version>/model.onnx``
from object storage through ``object_storage.open_store``, the same code the
pipeline publishes with. It answers what a KServe Triton predictor answers for
this model: ``/v2/health/ready``, ``/v2/models/<model>/ready``, ``/v2/models/<model>``
and ``POST /v2/models/<model>/infer`` (JSON or the binary tensor extension that
``tritonclient.http`` uses). Good for the demo and tests where no cluster runs.

Usage::

    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python examples/iris/serve_local.py \\
        --endpoint 127.0.0.1:9000 --bucket nga4m --prefix models/triton --model iris --http-port 8080

``--local-path DIR`` reads a repository from a directory instead of S3. The
server listens on all interfaces (the kserve REST server binds 0.0.0.0).

kserve and ``tritonclient.grpc`` both register protobuf messages of package
``inference`` (``inference.ServerLiveRequest`` ...), which cannot share a process:
this server keeps ``tritonclient.grpc`` out (the collection's ``triton`` module then
still gives the layout, ``model_keys``, but not ``parse_config``), so config.pbtxt is
only checked for the model name here; ``triton.parse_config`` checks it in the tests.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _import_collection():
    """Make ``ansible_collections.nga4m.platform`` importable (NGA4M_COLLECTION_PATH, else this repository).

    Also hides ``tritonclient.grpc`` (see the module docstring): the ``triton`` module
    then imports with ``HAS_MODEL_CONFIG = False``.
    """
    sys.modules.setdefault("tritonclient.grpc", None)
    entries = [e for e in os.environ.get("NGA4M_COLLECTION_PATH", "").split(os.pathsep) if e]
    if not entries:
        root = os.path.abspath(os.path.join(HERE, "..", ".."))
        tree = os.path.join(root, ".cache", "collections")
        link = os.path.join(tree, "ansible_collections", "nga4m", "platform")
        if os.path.exists(os.path.join(root, "galaxy.yml")) and not os.path.exists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(root, link)
        entries = [tree]
    for entry in reversed(entries):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def latest_version(store, prefix, model_name):
    """Highest numeric version directory under ``<prefix>/<model>/`` holding a model.onnx (None when none)."""
    from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import join_key  # pylint: disable=import-outside-toplevel

    model_dir = join_key(prefix, model_name)
    versions = []
    for key in store.list(model_dir):
        parts = key[len(model_dir) + 1:].split("/")
        if len(parts) == 2 and parts[0].isdigit() and parts[1] == "model.onnx":
            versions.append(int(parts[0]))
    return max(versions) if versions else None


def load_repository_model(store, prefix, model_name, version=None):
    """``(version, config.pbtxt text, onnx bytes)`` of one model in a Triton repository in ``store``."""
    import re  # pylint: disable=import-outside-toplevel

    from ansible_collections.nga4m.platform.plugins.module_utils import triton  # pylint: disable=import-outside-toplevel

    version = version or latest_version(store, prefix, model_name)
    if version is None:
        raise RuntimeError(f"no version of {model_name!r} under {store.uri(prefix)}")
    _model_dir, model_key, config_key = triton.model_keys(prefix, model_name, version)
    config_text = store.get(config_key)
    if config_text is None:
        raise RuntimeError(f"{store.uri(config_key)} is missing")
    config = config_text.decode("utf-8")
    named = re.search(r'^name:\s*"([^"]*)"', config, re.MULTILINE)
    if not named or named.group(1) != model_name:
        raise RuntimeError(f"{store.uri(config_key)} does not name model {model_name!r} (name: {named.group(1) if named else 'missing'})")
    data = store.get(model_key)
    if data is None:
        raise RuntimeError(f"{store.uri(model_key)} is missing")
    return version, config, data


def make_model_class():
    """Build the kserve Model subclass (kserve is imported only here: it parses sys.argv at import)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import onnxruntime as ort  # pylint: disable=import-outside-toplevel
    from kserve import Model  # pylint: disable=import-outside-toplevel
    from kserve.errors import InvalidInput  # pylint: disable=import-outside-toplevel
    from kserve.protocol.infer_type import InferOutput, InferResponse  # pylint: disable=import-outside-toplevel

    class TritonLayoutOnnxModel(Model):
        """One ONNX model of a Triton repository, run with onnxruntime (CPU)."""

        def __init__(self, name, store, prefix, version=None):
            super().__init__(name)
            self.store, self.prefix, self.wanted_version = store, prefix, version
            self.version = None
            self.config = None
            self.session = None

        def load(self):
            self.version, self.config, data = load_repository_model(self.store, self.prefix, self.name, self.wanted_version)
            self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
            self.ready = True
            print(f"loaded {self.name} version {self.version} from {self.store.uri(self.prefix)}", flush=True)
            return self.ready

        def predict(self, payload, headers=None, response_headers=None):  # pylint: disable=unused-argument
            graph_inputs = {i.name: i for i in self.session.get_inputs()}
            feed = {}
            for tensor in payload.inputs:
                if tensor.name not in graph_inputs:
                    raise InvalidInput(f"unknown input {tensor.name!r}; the model takes {', '.join(graph_inputs)}")
                want = np.float32 if graph_inputs[tensor.name].type == "tensor(float)" else None
                array = tensor.as_numpy()
                feed[tensor.name] = array.astype(want) if want is not None else array
            missing = set(graph_inputs) - set(feed)
            if missing:
                raise InvalidInput(f"missing input(s) {', '.join(sorted(missing))}")
            names = [o.name for o in self.session.get_outputs()]
            requested = [o.name for o in (payload.request_outputs or [])]
            unknown = [n for n in requested if n not in names]
            if unknown:
                raise InvalidInput(f"unknown output(s) {', '.join(unknown)}; the model has {', '.join(names)}")
            wanted = requested or names
            results = dict(zip(names, self.session.run(None, feed)))
            binary = {o.name: o.binary_data for o in (payload.request_outputs or [])}
            outputs = []
            for name in wanted:
                value = np.ascontiguousarray(results[name])
                out = InferOutput(name=name, shape=list(value.shape), datatype=_v2_datatype(value.dtype))
                use_binary = binary.get(name)
                out.set_data_from_numpy(value, binary_data=bool(payload.use_binary_outputs if use_binary is None else use_binary))
                outputs.append(out)
            return InferResponse(response_id=payload.id, model_name=self.name, infer_outputs=outputs,
                                 use_binary_outputs=payload.use_binary_outputs, requested_outputs=payload.request_outputs)

    return TritonLayoutOnnxModel


def _v2_datatype(dtype):
    from kserve.utils.numpy_codec import from_np_dtype  # pylint: disable=import-outside-toplevel

    return from_np_dtype(dtype)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve one model of a Triton repository over the v2 protocol (kserve ModelServer + onnxruntime)")
    parser.add_argument("--endpoint", default=os.environ.get("NGA4M_S3_ENDPOINT"), help="S3 endpoint host:port or URL (env NGA4M_S3_ENDPOINT)")
    parser.add_argument("--secure", action="store_true", help="HTTPS to a host:port endpoint")
    parser.add_argument("--region", default=os.environ.get("NGA4M_S3_REGION", "us-east-1"))
    parser.add_argument("--bucket", default=os.environ.get("NGA4M_S3_BUCKET", "nga4m"))
    parser.add_argument("--local-path", help="read the repository from this directory instead of S3")
    parser.add_argument("--prefix", default="models/triton", help="repository prefix in the bucket (default %(default)s)")
    parser.add_argument("--model", default="iris", help="model (directory) name (default %(default)s)")
    parser.add_argument("--version", type=int, help="model version (default: the highest)")
    parser.add_argument("--http-port", type=int, default=8080, help="REST port (default %(default)s)")
    args = parser.parse_args(argv)

    _import_collection()
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import open_store, open_store_from_env

    if args.local_path:
        store = open_store(local_path=args.local_path)
    else:
        if not args.endpoint:
            parser.error("--endpoint (or NGA4M_S3_ENDPOINT) is required without --local-path")
        store = open_store_from_env(args.endpoint, args.bucket, secure=args.secure, region=args.region)
    sys.argv = sys.argv[:1]  # kserve parses sys.argv when imported
    from kserve import ModelServer  # pylint: disable=import-outside-toplevel

    model = make_model_class()(args.model, store, args.prefix, args.version)
    model.load()
    ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
