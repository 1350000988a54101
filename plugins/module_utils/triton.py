# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Triton model repository logic: ONNX graph -> config.pbtxt -> idempotent publish.

Plain Python (no Ansible imports): the ``triton_model_repository`` module and
the iris example pipeline both call ``publish()``, the one source of truth.

Layout written (Triton model repository)::

    <prefix>/<model>/config.pbtxt
    <prefix>/<model>/<version>/model.onnx

Steps of ``publish()``: read the ONNX file (checked, sha256), derive or take
inputs/outputs, build the config dict, render it with Triton's own
``ModelConfig`` protobuf (``tritonclient.grpc.model_config_pb2``), parse the text
back and cross-check it against the ONNX graph - all before any write. Then
compare checksums with the store (no download of the model) and write what
differs: the model object first, config.pbtxt last, so a reader never sees a
config whose model is missing.
"""

import hashlib
import mmap
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Optional

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import join_key, normalize_key

try:
    import onnx

    HAS_ONNX = True
    ONNX_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised when onnx is absent
    HAS_ONNX = False
    ONNX_IMPORT_ERROR = _exc

try:
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    HAS_MODEL_CONFIG = True
    MODEL_CONFIG_IMPORT_ERROR = None
except (ImportError, TypeError) as _exc:  # pragma: no cover - exercised when tritonclient[grpc] is absent
    # TypeError: another package (e.g. kserve) already registered the same protobuf
    # messages in this process; tritonclient.grpc cannot be imported beside it.
    HAS_MODEL_CONFIG = False
    MODEL_CONFIG_IMPORT_ERROR = _exc

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"
MODEL_FILENAME = "model.onnx"
CONFIG_FILENAME = "config.pbtxt"

# onnx.TensorProto.DataType value -> Triton data type (kept as integers: no onnx import needed)
ONNX_TO_TRITON = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    8: "TYPE_STRING",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
    16: "TYPE_BF16",
}
TRITON_DATA_TYPES = tuple(sorted(set(ONNX_TO_TRITON.values())))
INSTANCE_KINDS = ("KIND_AUTO", "KIND_CPU", "KIND_GPU")

_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")


@dataclass
class TensorSpec:
    """One graph tensor: Triton data type and dims (-1 = dynamic; ``None`` = unknown rank)."""

    name: str
    data_type: str
    dims: Optional[list]

    def as_dict(self):
        return {"name": self.name, "data_type": self.data_type, "dims": None if self.dims is None else list(self.dims)}


@dataclass
class OnnxInfo:
    """What ``read_onnx`` learnt about a model file."""

    path: str
    sha256: str
    size: int
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def input(self, name):
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name):
        return next((t for t in self.outputs if t.name == name), None)


def require_libs(model_config=True, onnx_lib=True):
    """Raise NGA4MError when a needed library is missing (modules check HAS_* first for missing_required_lib)."""
    if onnx_lib and not HAS_ONNX:
        raise NGA4MError(f"the 'onnx' Python library is required: {ONNX_IMPORT_ERROR}")
    if model_config and not HAS_MODEL_CONFIG:
        raise NGA4MError(f"'tritonclient[grpc]' (model_config_pb2) and 'protobuf' are required: {MODEL_CONFIG_IMPORT_ERROR}")


# --------------------------------------------------------------------------- validation helpers

def validate_model_name(name):
    """Triton model names are directory names: letters, digits, '_', '-', '.'; no '/'."""
    if not isinstance(name, str) or not _MODEL_NAME_RE.match(name):
        raise NGA4MError(
            f"invalid model name {name!r}: use letters, digits, '_', '-' and '.' (not first), at most 255 characters, no '/' -"
            " it becomes the model directory name in the Triton repository"
        )
    return name


def validate_version(version):
    """Triton versions are positive integers (the version directory name)."""
    if isinstance(version, bool):
        raise NGA4MError(f"version must be a positive integer, got {version!r}")
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version.strip())
    if not isinstance(version, int) or version < 1:
        raise NGA4MError(f"version must be a positive integer (Triton version directory), got {version!r}")
    return version


def validate_prefix(prefix):
    return normalize_key(prefix or "", "prefix")


def _dims_from_shape(type_proto):
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        else:
            dims.append(-1)
    return dims


def _tensor_spec(value_info, kind):
    if value_info.type.WhichOneof("value") != "tensor_type":
        raise NGA4MError(
            f"{kind} {value_info.name!r} of the ONNX graph is not a tensor ({value_info.type.WhichOneof('value')});"
            " Triton's onnxruntime backend needs tensors"
        )
    elem = value_info.type.tensor_type.elem_type
    if elem not in ONNX_TO_TRITON:
        raise NGA4MError(f"{kind} {value_info.name!r} has ONNX element type {elem}, which Triton does not support")
    return TensorSpec(value_info.name, ONNX_TO_TRITON[elem], _dims_from_shape(value_info.type))


class _WireError(ValueError):
    pass


def _varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _WireError("varint too long")


def _fields(buf, start, end):
    """Yield ``(field_number, wire_type, value)`` of one protobuf message in ``buf[start:end]``.

    ``value`` is an int for varints and a ``(begin, end)`` slice for length-delimited
    fields; nothing is copied, so the bytes of big initializers are only skipped.
    """
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = (pos, pos + length), pos + length
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise _WireError("truncated message")
        yield number, wire, value


def _tensor_meta(buf, span):
    """``(name, is_external)`` of a serialized TensorProto (name = field 8, data_location = field 14)."""
    name, external = "", False
    for number, wire, value in _fields(buf, *span):
        if number == 8 and wire == 2:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", errors="replace")
        elif number == 14 and wire == 0:
            external = value == 1
    return name, external


def _slim_model(buf):
    """An ``onnx.ModelProto`` holding only ir_version and the graph's inputs/outputs.

    Reads the wire format directly (ModelProto.graph = 7; GraphProto.input = 11,
    output = 12, initializer = 5, sparse_initializer = 15) so that a 50 MB
    initializer is skipped, not parsed: the idempotent second run stays cheap.
    Also returns the initializer names and those stored as external data.
    """
    slim = onnx.ModelProto()
    graph_span = None
    for number, wire, value in _fields(buf, 0, len(buf)):
        if number == 1 and wire == 0:
            slim.ir_version = value
        elif number == 7 and wire == 2:
            graph_span = value
    if graph_span is None:
        raise _WireError("no graph")
    initializers, external = set(), []
    for number, wire, value in _fields(buf, *graph_span):
        if wire != 2:
            continue
        if number == 11:
            slim.graph.input.add().ParseFromString(bytes(buf[value[0]:value[1]]))
        elif number == 12:
            slim.graph.output.add().ParseFromString(bytes(buf[value[0]:value[1]]))
        elif number == 5:
            name, is_external = _tensor_meta(buf, value)
            initializers.add(name)
            if is_external:
                external.append(name)
        elif number == 15:
            for sub_number, sub_wire, sub_value in _fields(buf, *value):
                if sub_number == 1 and sub_wire == 2:
                    initializers.add(_tensor_meta(buf, sub_value)[0])
    return slim, initializers, external


def onnx_io(model, initializers=None):
    """Graph inputs (without initializers) and outputs of an ``onnx.ModelProto`` as ``TensorSpec`` lists."""
    if initializers is None:
        initializers = {init.name for init in model.graph.initializer}
    inputs = [_tensor_spec(vi, "input") for vi in model.graph.input if vi.name not in initializers]
    outputs = [_tensor_spec(vi, "output") for vi in model.graph.output]
    return inputs, outputs


def read_onnx(path, full_check=True):
    """Read an ONNX model file; return ``OnnxInfo`` (sha256, inputs, outputs).

    The file is memory-mapped: hashing streams through it and only the graph's
    inputs/outputs are decoded. ``full_check`` also runs ``onnx.checker`` on the
    whole model (``publish()`` does that only when the model is to be uploaded).
    """
    require_libs(model_config=False)
    if not path:
        raise NGA4MError("model_file is required with state=present")
    if not os.path.exists(path):
        raise NGA4MError(f"model_file {path} does not exist")
    if not os.path.isfile(path):
        raise NGA4MError(f"model_file {path} is not a regular file")
    try:
        size = os.path.getsize(path)
        if size == 0:
            raise NGA4MError(f"model_file {path} is empty, not an ONNX model")
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            digest = hashlib.sha256(mapped).hexdigest()
            view = memoryview(mapped)
            try:
                slim, initializers, external = _slim_model(view)
            finally:
                view.release()
    except NGA4MError:
        raise
    except (_WireError, IndexError) as exc:
        raise NGA4MError(f"model_file {path} is not a valid ONNX model (malformed protobuf: {exc}); export it again") from exc
    except Exception as exc:  # pylint: disable=broad-except  # protobuf DecodeError, OSError
        raise NGA4MError(f"model_file {path} is not a valid ONNX model (cannot decode it: {exc}); export it again") from exc
    if not slim.ir_version or not slim.graph.output:
        raise NGA4MError(f"model_file {path} is not a valid ONNX model (no IR version or no graph outputs); export it again")
    if external:
        raise NGA4MError(f"model_file {path} keeps tensors in external data files ({', '.join(external[:3])}); save it as a single file")
    inputs, outputs = onnx_io(slim, initializers)
    if full_check:
        check_onnx(path)
    return OnnxInfo(path=path, sha256=digest, size=size, inputs=inputs, outputs=outputs)


def check_onnx(path):
    """Run ``onnx.checker`` on the whole model file (NGA4MError naming the first problem)."""
    require_libs(model_config=False)
    try:
        with open(path, "rb") as handle:
            data = handle.read()  # checking serialized bytes is faster than letting onnx load the path
        onnx.checker.check_model(data)
    except Exception as exc:  # pylint: disable=broad-except  # onnx.checker.ValidationError, DecodeError, C++ errors
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise NGA4MError(f"model_file {path} is not a valid ONNX model (onnx checker: {first}); export it again") from exc


# --------------------------------------------------------------------------- config building

def _normalize_data_type(value, where):
    if not isinstance(value, str):
        raise NGA4MError(f"unknown data_type {value!r} for {where}; use one of {', '.join(TRITON_DATA_TYPES)}")
    text = value.strip().upper()
    if not text.startswith("TYPE_"):
        text = "TYPE_" + text
    if text not in TRITON_DATA_TYPES:
        raise NGA4MError(f"unknown data_type {value!r} for {where}; use one of {', '.join(TRITON_DATA_TYPES)}")
    return text


def _normalize_dims(dims, where):
    if not isinstance(dims, (list, tuple)) or not dims:
        raise NGA4MError(f"dims of {where} must be a non-empty list of integers (-1 for a dynamic dimension), got {dims!r}")
    out = []
    for dim in dims:
        try:
            value = int(dim)
        except (TypeError, ValueError):
            value = None
        if value is None or isinstance(dim, bool) or (value < 1 and value != -1):
            raise NGA4MError(f"dims of {where} must be positive integers or -1, got {dims!r}")
        out.append(value)
    return out


def _graph_dims_for_config(spec, kind, max_batch_size):
    """Config ``(dims, reshape)`` of a graph tensor: the batch dimension removed when max_batch_size > 0.

    A tensor left without dimensions (a scalar, or a 1-D ``[batch]`` tensor of a batched model, such as
    the ``label`` skl2onnx exports) is declared as Triton documents it: ``dims: [1]`` with
    ``reshape: {shape: []}``. ``reshape`` is None when the model sees the config dims unchanged.
    """
    where = f"{kind} {spec.name!r}"
    if spec.dims is None:
        raise NGA4MError(f"{where} has no shape in the ONNX graph; give its dims in '{kind}s'")
    dims = list(spec.dims)
    if max_batch_size > 0:
        if not dims:
            raise NGA4MError(f"{where} is a scalar in the ONNX graph, so it has no batch dimension; use max_batch_size: 0")
        if dims[0] != -1:
            raise NGA4MError(
                f"max_batch_size is {max_batch_size} but {where} has a fixed first dimension {dims[0]} in the ONNX graph;"
                " use max_batch_size: 0 or export the model with a dynamic batch dimension"
            )
        dims = dims[1:]
    if not dims:
        return [1], []
    return dims, None


def _normalize_reshape(shape, where):
    if not isinstance(shape, (list, tuple)):
        raise NGA4MError(f"reshape of {where} must be a list of integers (empty for a scalar), got {shape!r}")
    return _normalize_dims(shape, where) if shape else []


def _element_count(dims):
    count = 1
    for dim in dims:
        if dim == -1:
            return None
        count *= dim
    return count


def _tensor_entry(name, data_type, dims, reshape):
    entry = {"name": name, "data_type": data_type, "dims": dims}
    if reshape is not None:
        entry["reshape"] = {"shape": reshape}
    return entry


def _tensor_list(given, graph_specs, kind, max_batch_size, graph_names):
    if given is None:
        return [_tensor_entry(s.name, s.data_type, *_graph_dims_for_config(s, kind, max_batch_size)) for s in graph_specs]
    if not isinstance(given, (list, tuple)):
        raise NGA4MError(f"{kind}s must be a list of tensors (name, data_type, dims)")
    out, seen = [], set()
    for item in given:
        if not isinstance(item, dict) or not item.get("name"):
            raise NGA4MError(f"every entry of {kind}s needs a name, got {item!r}")
        name = item["name"]
        if name in seen:
            raise NGA4MError(f"{kind} {name!r} is listed twice")
        seen.add(name)
        where = f"{kind} {name!r}"
        spec = next((s for s in graph_specs if s.name == name), None)
        data_type = item.get("data_type")
        dims = item.get("dims")
        if spec is None and (data_type is None or dims is None):
            raise NGA4MError(f"{where} is not in the ONNX graph (graph {kind}s: {', '.join(graph_names) or 'none'})")
        if dims is not None:
            dims = _normalize_dims(dims, where)
            reshape = _normalize_reshape(item["reshape"], where) if item.get("reshape") is not None else None
        elif item.get("reshape") is not None:
            raise NGA4MError(f"reshape of {where} needs its dims too (the shape Triton's clients send and receive)")
        else:
            dims, reshape = _graph_dims_for_config(spec, kind, max_batch_size)
        entry = _tensor_entry(name, _normalize_data_type(data_type, where) if data_type is not None else spec.data_type, dims, reshape)
        if kind == "input" and item.get("optional"):
            entry["optional"] = True
        out.append(entry)
    return out


def _int_option(value, name, minimum):
    if isinstance(value, bool):
        raise NGA4MError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise NGA4MError(f"{name} must be an integer >= {minimum}, got {value!r}") from exc
    if number < minimum:
        raise NGA4MError(f"{name} must be >= {minimum}, got {number}")
    return number


def _version_policy(policy):
    chosen = {k: v for k, v in (policy or {}).items() if v not in (None, False, [])}
    if not chosen:
        return None
    if len(chosen) != 1 or next(iter(chosen)) not in ("latest", "all", "specific"):
        raise NGA4MError(f"version_policy takes exactly one of latest (N), all (true) or specific (list of versions), got {policy!r}")
    key, value = next(iter(chosen.items()))
    if key == "latest":
        return {"latest": {"num_versions": _int_option(value, "version_policy.latest", 1)}}
    if key == "all":
        return {"all": {}}
    if not isinstance(value, (list, tuple)):
        raise NGA4MError("version_policy.specific must be a list of positive version numbers")
    return {"specific": {"versions": [_int_option(v, "version_policy.specific version", 1) for v in value]}}


def _instance_groups(groups):
    out = []
    for group in groups or []:
        if not isinstance(group, dict):
            raise NGA4MError(f"instance_group entries are dicts with count and kind, got {group!r}")
        kind = group.get("kind") or "KIND_CPU"
        if kind not in INSTANCE_KINDS:
            raise NGA4MError(f"instance_group kind {kind!r} is invalid; use one of {', '.join(INSTANCE_KINDS)}")
        entry = {"count": _int_option(group.get("count", 1) if group.get("count") is not None else 1, "instance_group count", 1), "kind": kind}
        if group.get("gpus"):
            if kind != "KIND_GPU":
                raise NGA4MError("instance_group gpus only apply to kind KIND_GPU")
            entry["gpus"] = [_int_option(g, "instance_group gpu id", 0) for g in group["gpus"]]
        out.append(entry)
    return out


def _dynamic_batching(options, max_batch_size):
    if options is None:
        return None
    if max_batch_size < 1:
        raise NGA4MError("dynamic_batching needs max_batch_size > 0 (Triton batches along the first dimension)")
    out = {}
    preferred = options.get("preferred_batch_size") or []
    if preferred:
        sizes = [_int_option(s, "dynamic_batching.preferred_batch_size", 1) for s in preferred]
        too_big = [s for s in sizes if s > max_batch_size]
        if too_big:
            raise NGA4MError(f"dynamic_batching.preferred_batch_size {too_big} exceeds max_batch_size {max_batch_size}")
        out["preferred_batch_size"] = sizes
    if options.get("max_queue_delay_microseconds") is not None:
        out["max_queue_delay_microseconds"] = _int_option(options["max_queue_delay_microseconds"], "dynamic_batching.max_queue_delay_microseconds", 0)
    return out


def build_config(model_name, info, options=None):
    """Build the Triton config as a dict (proto field names, ``ParseDict``-compatible).

    ``info`` is an ``OnnxInfo`` (or anything with ``inputs``/``outputs`` lists of
    ``TensorSpec``). ``options`` keys: max_batch_size, inputs, outputs,
    instance_group, dynamic_batching, version_policy. Inputs/outputs not given
    are read from the graph; fields omitted in a given tensor (data_type, dims)
    are filled from the graph.
    """
    options = dict(options or {})
    validate_model_name(model_name)
    mbs = options.get("max_batch_size")
    max_batch_size = 0 if mbs is None else _int_option(mbs, "max_batch_size", 0)
    config = {"name": model_name, "platform": PLATFORM, "backend": BACKEND, "max_batch_size": max_batch_size}
    policy = _version_policy(options.get("version_policy"))
    if policy:
        config["version_policy"] = policy
    config["input"] = _tensor_list(options.get("inputs"), info.inputs, "input", max_batch_size, [t.name for t in info.inputs])
    config["output"] = _tensor_list(options.get("outputs"), info.outputs, "output", max_batch_size, [t.name for t in info.outputs])
    groups = _instance_groups(options.get("instance_group"))
    if groups:
        config["instance_group"] = groups
    batching = _dynamic_batching(options.get("dynamic_batching"), max_batch_size)
    if batching is not None:
        config["dynamic_batching"] = batching
    return config


# --------------------------------------------------------------------------- protobuf round trip

def config_to_message(config):
    """ModelConfig protobuf from a config dict (Triton's own schema rejects unknown fields)."""
    require_libs(onnx_lib=False)
    try:
        return json_format.ParseDict(config, model_config_pb2.ModelConfig())
    except json_format.ParseError as exc:
        raise NGA4MError(f"the model config does not fit Triton's ModelConfig schema: {exc}") from exc


def render_config(config):
    """Canonical config.pbtxt text (protobuf text format) from a dict or a ModelConfig message."""
    require_libs(onnx_lib=False)
    message = config if isinstance(config, model_config_pb2.ModelConfig) else config_to_message(config)
    return text_format.MessageToString(message)


def parse_config(text):
    """Parse config.pbtxt text into a ModelConfig message (NGA4MError on syntax/schema errors)."""
    require_libs(onnx_lib=False)
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise NGA4MError(f"config.pbtxt is not a valid Triton ModelConfig: {exc}") from exc


def config_message_to_dict(message):
    """ModelConfig -> plain dict with proto field names and integer dims."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)

    def fix(node):
        if isinstance(node, dict):
            return {k: (fix(v) if k not in _INT_FIELDS else _ints(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return fix(data)


_INT_FIELDS = ("dims", "shape", "versions", "preferred_batch_size", "max_queue_delay_microseconds")


def _ints(value):
    if isinstance(value, list):
        return [int(v) for v in value]
    return int(value)


def _data_type_name(value):
    return model_config_pb2.DataType.Name(value) if isinstance(value, int) else value


def _dims_compatible(config_dims, graph_dims):
    if graph_dims is None:
        return True
    if len(config_dims) != len(graph_dims):
        return False
    return all(g == -1 or c == g for c, g in zip(config_dims, graph_dims))


def check_config(config, info, model_name=None):
    """Cross-check a ModelConfig (message, dict or pbtxt text) against the ONNX graph.

    Raises ``NGA4MError`` listing every problem; each message names the tensor.
    """
    require_libs(onnx_lib=False)
    if isinstance(config, (str, bytes)):
        config = parse_config(config)
    elif isinstance(config, dict):
        config = config_to_message(config)
    problems = []
    if model_name is not None and config.name != model_name:
        problems.append(f"config name {config.name!r} must equal the model directory name {model_name!r}")
    if config.platform not in ("", PLATFORM) or config.backend not in ("", BACKEND) or not (config.platform or config.backend):
        problems.append(f"config must use platform {PLATFORM!r} / backend {BACKEND!r}, got platform {config.platform!r} backend {config.backend!r}")
    mbs = config.max_batch_size
    if mbs < 0:
        problems.append(f"max_batch_size must be >= 0, got {mbs}")
    if config.HasField("dynamic_batching") and mbs < 1:
        problems.append("dynamic_batching needs max_batch_size > 0")

    for kind, tensors, graph in (("input", config.input, info.inputs), ("output", config.output, info.outputs)):
        graph_by_name = {t.name: t for t in graph}
        for tensor in tensors:
            where = f"{kind} {tensor.name!r}"
            spec = graph_by_name.get(tensor.name)
            if spec is None:
                problems.append(f"{where} is not in the ONNX graph (graph {kind}s: {', '.join(graph_by_name) or 'none'})")
                continue
            dtype = _data_type_name(tensor.data_type)
            if dtype != spec.data_type:
                problems.append(f"{where}: data_type {dtype} in config but {spec.data_type} in the ONNX graph")
            config_dims = list(tensor.dims)
            seen_as = "dims"
            if tensor.HasField("reshape"):
                # The model sees the reshaped tensor; the clients see dims. Triton needs the same element count.
                shape = list(tensor.reshape.shape)
                counts = (_element_count(config_dims), _element_count(shape))
                if None not in counts and counts[0] != counts[1]:
                    problems.append(f"{where}: reshape {shape} holds {counts[1]} elements but dims {config_dims} hold {counts[0]}")
                config_dims, seen_as = shape, "reshape"
            graph_dims = None if spec.dims is None else list(spec.dims)
            if mbs > 0 and graph_dims is not None:
                if not graph_dims or graph_dims[0] != -1:
                    problems.append(
                        f"{where}: max_batch_size is {mbs} but the ONNX graph fixes the first dimension"
                        f" ({graph_dims[0] if graph_dims else 'scalar'}); use max_batch_size: 0 or a dynamic batch dimension"
                    )
                    continue
                graph_dims = graph_dims[1:]
            if not _dims_compatible(config_dims, graph_dims):
                shown = f"[-1 (batch)] + {graph_dims}" if mbs > 0 else f"{graph_dims}"
                problems.append(f"{where}: {seen_as} {config_dims} in config do not match {shown} in the ONNX graph")
        if kind == "input":
            configured = {t.name for t in tensors}
            for spec in graph:
                if spec.name not in configured:
                    problems.append(f"input {spec.name!r} of the ONNX graph is missing from the config inputs (onnxruntime needs every input)")
    for group in config.instance_group:
        kind_name = model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind)
        if kind_name not in INSTANCE_KINDS:
            problems.append(f"instance_group kind {kind_name} is invalid for onnxruntime; use one of {', '.join(INSTANCE_KINDS)}")
    if problems:
        raise NGA4MError("config.pbtxt does not match the ONNX model: " + "; ".join(problems))


def prepare_config(model_name, info, options=None):
    """Build, render, parse back and cross-check: returns ``(config_dict, pbtxt_text)``."""
    config = build_config(model_name, info, options)
    text = render_config(config)
    check_config(parse_config(text), info, model_name)
    return config, text


# --------------------------------------------------------------------------- publish

def model_keys(prefix, model_name, version):
    """``(model_dir, model_key, config_key)`` in the store for this model/version."""
    model_dir = join_key(prefix, model_name)
    return model_dir, join_key(model_dir, str(version), MODEL_FILENAME), join_key(model_dir, CONFIG_FILENAME)


def _version_of(key, model_dir):
    rest = key[len(model_dir) + 1:]
    head = rest.split("/", 1)[0]
    return int(head) if "/" in rest and head.isdigit() else None


def _interface(config):
    """What every version of a model must match: whether it batches, and each tensor's type and shape, by name."""
    tensors = {}
    for kind in ("input", "output"):
        for tensor in config.get(kind, []):
            shape = {"data_type": tensor.get("data_type", "TYPE_INVALID"), "dims": list(tensor.get("dims", []))}
            if "reshape" in tensor:
                shape["reshape"] = list(tensor["reshape"].get("shape", []))
            tensors[(kind, tensor["name"])] = shape
    return int(config.get("max_batch_size", 0)), tensors


def interface_changes(old_text, new_config):
    """How the stored config.pbtxt's interface differs from ``new_config`` (dict); one line per difference."""
    try:
        old_config = config_message_to_dict(parse_config(old_text))
    except NGA4MError as exc:
        return [f"the stored {CONFIG_FILENAME} cannot be read ({exc})"]
    old_mbs, old_tensors = _interface(old_config)
    new_mbs, new_tensors = _interface(new_config)
    # Any max_batch_size above 0 means the same dims (batch dimension left out); only 0 <-> >0 changes them.
    changes = [f"max_batch_size {old_mbs} -> {new_mbs}"] if (old_mbs > 0) != (new_mbs > 0) else []
    for key in sorted(set(old_tensors) | set(new_tensors)):
        where = f"{key[0]} {key[1]!r}"
        before, after = old_tensors.get(key), new_tensors.get(key)
        if before is None:
            changes.append(f"{where} added")
        elif after is None:
            changes.append(f"{where} removed")
        elif before != after:
            fields = [f"{f} {before.get(f)} -> {after.get(f)}" for f in ("data_type", "dims", "reshape") if before.get(f) != after.get(f)]
            changes.append(f"{where}: {', '.join(fields)}")
    return changes


def _retirement(store, model_dir, model_name, version, old_text, config, text, retire_versions):
    """``(versions, delete steps)`` of the other versions that do not fit the new config (empty when they all fit).

    Without ``retire_versions`` only the stored config is compared (nothing is downloaded) and a
    difference while other versions exist is refused. With it, every other version's graph is read
    and checked against the new config, so a run interrupted between writing the config and removing
    the old versions finishes on the next run.
    """
    keys = store.list(model_dir)
    others = sorted({_version_of(k, model_dir) for k in keys} - {None, version})
    if not others:
        return [], []
    if not retire_versions:
        changes = interface_changes(old_text, config) if old_text is not None and old_text != text else []
        if changes:
            raise NGA4MError(
                f"version {version} of {model_name} does not fit the {CONFIG_FILENAME} that versions {others} are"
                f" served with ({'; '.join(changes)}); one config serves every version of a model. Publish it under a new model"
                " name, or set retire_versions to remove the other versions once the new one and its config are written"
            )
        return [], []
    message = parse_config(text)
    retired = {}
    for other in others:
        data = store.get(join_key(model_dir, str(other), MODEL_FILENAME))
        if data is None:
            retired[other] = f"version {other} has no {MODEL_FILENAME}"
            continue
        with tempfile.NamedTemporaryFile(suffix=".onnx") as handle:
            handle.write(data)
            handle.flush()
            try:
                check_config(message, read_onnx(handle.name, full_check=False))
            except NGA4MError as exc:
                retired[other] = str(exc).replace(handle.name, f"version {other}")
    steps = [{"action": "delete", "key": k, "reason": f"retired: {why}"}
             for other, why in retired.items() for k in keys if k.startswith(join_key(model_dir, str(other)) + "/")]
    return sorted(retired), steps


def publish(store, prefix, model_name, version, model_path=None, config_options=None, check_mode=False, state="present",
            create_bucket=None, retire_versions=False):
    """Publish (``state=present``) or remove (``state=absent``) one model version in Triton layout.

    ``store`` is a ``LocalStore`` or ``S3Store``. Every input is validated and the
    config is cross-checked against the ONNX graph before anything is written.
    ``create_bucket``: create a missing bucket/root (``None`` = store default:
    local directories are created, S3 buckets are not).

    One config.pbtxt serves every version of a model, so a version whose interface (tensors,
    max_batch_size) differs from the stored config is refused while other versions exist, unless
    ``retire_versions``: then the new model and config are written first and the other versions
    removed after, so the config always has a model that matches it.

    Returns a dict: changed, plan (list of actions), uploaded, deleted, retired (versions),
    storage_uri, model_path, config, config_dict, version, sha256, diff.
    """
    if state not in ("present", "absent"):
        raise NGA4MError(f"state must be present or absent, got {state!r}")
    validate_model_name(model_name)
    version = validate_version(version)
    prefix = validate_prefix(prefix)
    model_dir, model_key, config_key = model_keys(prefix, model_name, version)
    result = {
        "changed": False,
        "plan": [],
        "uploaded": [],
        "deleted": [],
        "retired": [],
        "storage_uri": store.uri(prefix),
        "model_path": store.location(model_dir),
        "version": version,
        "config": "",
        "config_dict": {},
        "sha256": None,
        "diff": {"before": "", "after": "", "before_header": store.uri(config_key), "after_header": store.uri(config_key)},
    }
    if state == "absent":
        return _unpublish(store, model_dir, config_key, version, check_mode, result)

    require_libs()
    info = read_onnx(model_path, full_check=False)
    config, text = prepare_config(model_name, info, config_options)
    result.update(config=text, config_dict=config, sha256=info.sha256)

    # The plan is made read-only (a missing bucket or directory is only noted), the model
    # checked, and only then is anything created or written.
    prepare_args = {} if create_bucket is None else {"create": bool(create_bucket)}
    create_store = store.prepare(check_mode=True, **prepare_args)
    if create_store:
        result["plan"].append({"action": "create", "key": "", "reason": f"{store.describe()} does not exist"})

    remote = store.stat(model_key)
    if remote is None:
        result["plan"].append({"action": "upload", "key": model_key, "reason": "missing"})
    elif remote.sha256 != info.sha256:
        reason = "no sha256 metadata on the stored object" if not remote.sha256 else "checksum differs"
        result["plan"].append({"action": "upload", "key": model_key, "reason": reason})

    old = store.get(config_key)
    old_text = old.decode("utf-8", errors="replace") if old is not None else ""
    result["diff"]["before"] = old_text
    result["diff"]["after"] = text
    if old is None or old_text != text:
        result["plan"].append({"action": "upload", "key": config_key, "reason": "missing" if old is None else "content differs"})
    result["retired"], deletes = _retirement(store, model_dir, model_name, version, old_text if old is not None else None, config, text,
                                             retire_versions)
    result["plan"].extend(deletes)

    result["changed"] = bool(result["plan"])
    if any(step["key"] == model_key for step in result["plan"]):
        check_onnx(info.path)  # the whole model is checked before it is written (or would be, in check mode)
    if check_mode:
        return result
    if create_store:
        store.prepare(**prepare_args)
    try:
        for step in result["plan"]:  # model, then config.pbtxt, then the retired versions (plan order)
            if step["action"] == "delete":
                store.delete(step["key"])
                result["deleted"].append(step["key"])
                continue
            if step["key"] == model_key:
                store.put_file(model_key, info.path, sha256=info.sha256)
            elif step["key"] == config_key:
                store.put_bytes(config_key, text.encode("utf-8"), content_type="text/plain")
            else:
                continue
            result["uploaded"].append(step["key"])
    except NGA4MError as exc:
        done = ", ".join(result["uploaded"]) or "nothing"
        if result["deleted"]:
            done += f" (removed: {', '.join(result['deleted'])})"
        raise NGA4MError(
            f"publishing {model_name} version {version} to {store.describe()} failed: {exc}. Written before the failure: {done};"
            f" {CONFIG_FILENAME} is written after the model and before any retired version is removed, so no config points at a"
            " missing model. Fix the cause and run again to finish."
        ) from exc
    return result


def _unpublish(store, model_dir, config_key, version, check_mode, result):
    if not store.available():
        return result
    keys = store.list(model_dir)
    version_prefix = join_key(model_dir, str(version)) + "/"
    doomed = [k for k in keys if k.startswith(version_prefix)]
    others = {_version_of(k, model_dir) for k in keys if not k.startswith(version_prefix)} - {None}
    old = store.get(config_key) if config_key in keys else None
    old_text = old.decode("utf-8", errors="replace") if old is not None else ""
    result["diff"]["before"] = old_text
    result["diff"]["after"] = old_text
    if not others:
        # no version left: remove config.pbtxt first, so no config points at a missing model
        rest = [k for k in keys if k not in doomed]
        doomed = ([config_key] if config_key in rest else []) + doomed + [k for k in rest if k != config_key]
        result["diff"]["after"] = ""
    result["plan"] = [{"action": "delete", "key": k, "reason": "state=absent"} for k in doomed]
    result["changed"] = bool(doomed)
    if check_mode:
        return result
    for key in doomed:
        store.delete(key)
        result["deleted"].append(key)
    return result
