#!/usr/bin/python
# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module nga4m.platform.triton_model_repository (thin wrapper of module_utils/triton.py)."""

DOCUMENTATION = r"""
module: triton_model_repository
short_description: Publish an ONNX model to a Triton model repository in object storage or a directory
version_added: 0.1.0
description:
  - Publishes an ONNX model in Triton layout, C(<prefix>/<name>/config.pbtxt) and
    C(<prefix>/<name>/<version>/model.onnx), to an S3 bucket (through the minio SDK) or to a local directory.
  - C(config.pbtxt) uses platform C(onnxruntime_onnx) (backend C(onnxruntime)). Inputs and outputs not given
    are read from the ONNX graph (names, data types, dims; a dynamic dimension becomes C(-1); with
    O(max_batch_size) above 0 the first, batch, dimension is dropped).
  - The config text is rendered and parsed back with Triton's own C(ModelConfig) protobuf and cross-checked
    against the ONNX graph before anything is written; a mismatch names the tensor.
  - Idempotent. The sha256 of the model is stored as object metadata (C(x-amz-meta-sha256)) and compared on the
    next run without downloading the model; C(config.pbtxt) is compared by content. The model object is written
    before C(config.pbtxt), so no reader sees a config whose model is missing.
  - O(state=absent) removes one version, and the whole model directory (config included, config first) when no
    version is left.
  - One C(config.pbtxt) serves every version of a model. A version whose interface (tensor names, data types,
    dims, reshape, or O(max_batch_size)) differs from the stored config is refused, naming the differing tensors,
    while other versions exist, unless O(retire_versions=true).
author:
  - NGA4M developers (@nga4m)
extends_documentation_fragment:
  - nga4m.platform.object_storage
attributes:
  check_mode:
    support: full
    description: Computes the same C(changed) and plan without writing anything (a missing bucket is not created).
  diff_mode:
    support: full
    description: Shows C(config.pbtxt) before and after.
options:
  name:
    description:
      - Model name, also the model directory name and the C(name) in C(config.pbtxt).
      - Letters, digits, C(_), C(-) and C(.) (not first); no C(/).
    type: str
    required: true
  version:
    description:
      - Model version, a positive integer (the version directory).
    type: int
    default: 1
  model_file:
    description:
      - Path of the ONNX model on the controller. Required with O(state=present).
    type: path
  state:
    description:
      - V(present) publishes the model version; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  prefix:
    description:
      - Repository root inside the bucket or O(local_path) (for example V(models/triton)). No C(..) segments.
    type: str
    default: ""
  local_path:
    description:
      - Publish to this local directory (created when missing) instead of S3. Mutually exclusive with O(bucket) and O(endpoint).
    type: path
  max_batch_size:
    description:
      - Triton C(max_batch_size). V(0) disables batching (dims then include the first dimension).
      - Above V(0), every tensor's first ONNX dimension must be dynamic; it is the batch dimension and is left out of dims.
      - "A tensor left without dimensions (a 1-D C([batch]) output such as the C(label) skl2onnx exports, or a scalar)
        is declared as C(dims: [1]) with C(reshape: {shape: []}), as Triton documents for such tensors."
    type: int
    default: 0
  retire_versions:
    description:
      - When the published version does not fit the other versions of the model (its interface differs from the
        stored C(config.pbtxt)), remove those other versions. The new model and C(config.pbtxt) are written first
        and the other versions removed after, so the config always has a model that matches it; an interrupted
        run finishes on the next one.
      - With V(true) every other version's graph is read (downloaded from S3) on each run, to find those that do not
        fit the new config.
      - With V(false) such a publish fails before anything is written, naming the differing tensors.
    type: bool
    default: false
  inputs:
    description:
      - Model inputs. When omitted, all graph inputs are used. Omitted O(inputs[].data_type) and O(inputs[].dims) are read from the graph.
    type: list
    elements: dict
    suboptions:
      name:
        description: Tensor name in the ONNX graph.
        type: str
        required: true
      data_type:
        description: Triton data type such as V(TYPE_FP32), V(TYPE_INT64).
        type: str
      dims:
        description: Dimensions without the batch dimension; V(-1) for a dynamic one.
        type: list
        elements: int
      reshape:
        description:
          - Shape the model sees, when it differs from O(inputs[].dims) (Triton's C(reshape)); V([]) for a scalar.
            Needs O(inputs[].dims).
        type: list
        elements: int
      optional:
        description: Mark the input optional.
        type: bool
        default: false
  outputs:
    description:
      - Model outputs. When omitted, all graph outputs are used. Omitted fields are read from the graph.
    type: list
    elements: dict
    suboptions:
      name:
        description: Tensor name in the ONNX graph.
        type: str
        required: true
      data_type:
        description: Triton data type such as V(TYPE_FP32).
        type: str
      dims:
        description: Dimensions without the batch dimension; V(-1) for a dynamic one.
        type: list
        elements: int
      reshape:
        description:
          - Shape the model produces, when it differs from O(outputs[].dims) (Triton's C(reshape)); V([]) for a
            1-D batched output or a scalar. Needs O(outputs[].dims).
        type: list
        elements: int
  instance_group:
    description:
      - Triton C(instance_group) entries. Triton's default applies when omitted.
    type: list
    elements: dict
    suboptions:
      count:
        description: Number of model instances.
        type: int
        default: 1
      kind:
        description: Where instances run.
        type: str
        choices: [KIND_AUTO, KIND_CPU, KIND_GPU]
        default: KIND_CPU
      gpus:
        description: GPU ids, with O(instance_group[].kind=KIND_GPU).
        type: list
        elements: int
  dynamic_batching:
    description:
      - Enable Triton dynamic batching (needs O(max_batch_size) above 0).
    type: dict
    suboptions:
      preferred_batch_size:
        description: Preferred batch sizes, each at most O(max_batch_size).
        type: list
        elements: int
      max_queue_delay_microseconds:
        description: How long a request may wait to be batched.
        type: int
  version_policy:
    description:
      - Which versions Triton serves. One of O(version_policy.latest), O(version_policy.all), O(version_policy.specific). Triton's default is the latest one.
    type: dict
    suboptions:
      latest:
        description: Serve the latest N versions.
        type: int
      all:
        description: Serve all versions.
        type: bool
      specific:
        description: Serve these versions.
        type: list
        elements: int
requirements:
  - onnx
  - tritonclient[grpc] (Triton's C(model_config_pb2)) and protobuf
notes:
  - KServe reads the repository root given by RV(storage_uri) (C(storageUri) of a Triton InferenceService).
  - Tensors kept in external data files are not supported; save the model as one file.
seealso:
  - name: Triton model configuration
    description: The C(config.pbtxt) schema.
    link: https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/model_configuration.html
"""

EXAMPLES = r"""
- name: Publish the iris model (version 1) to MinIO, reading tensors from the graph
  nga4m.platform.triton_model_repository:
    name: iris
    version: 1
    model_file: /tmp/iris/model.onnx
    endpoint: minio.minio.svc:9000
    secure: false
    access_key: "{{ lookup('ansible.builtin.env', 'AWS_ACCESS_KEY_ID') }}"
    secret_key: "{{ lookup('ansible.builtin.env', 'AWS_SECRET_ACCESS_KEY') }}"
    bucket: models
    create_bucket: true
    prefix: triton
    max_batch_size: 8
    dynamic_batching:
      preferred_batch_size: [4, 8]
      max_queue_delay_microseconds: 100
    instance_group:
      - count: 2
        kind: KIND_CPU
  register: iris_repo

- name: Use the repository root as the InferenceService storageUri
  ansible.builtin.debug:
    msg: "storageUri: {{ iris_repo.storage_uri }}"

- name: Publish to a local directory with explicit tensors
  nga4m.platform.triton_model_repository:
    name: iris
    version: 2
    model_file: /tmp/iris/model.onnx
    local_path: /srv/triton-models
    max_batch_size: 0
    inputs:
      - name: input
        data_type: TYPE_FP32
        dims: [-1, 4]
    version_policy:
      latest: 2

- name: Publish version 3 with a new input name, removing the versions that no longer fit config.pbtxt
  nga4m.platform.triton_model_repository:
    name: iris
    version: 3
    model_file: /tmp/iris/model-v3.onnx
    local_path: /srv/triton-models
    retire_versions: true

- name: Remove version 1 (and the model directory when no version is left)
  nga4m.platform.triton_model_repository:
    name: iris
    version: 1
    state: absent
    endpoint: https://s3.example.com
    access_key: "{{ s3_access_key }}"
    secret_key: "{{ s3_secret_key }}"
    bucket: models
    prefix: triton
"""

RETURN = r"""
storage_uri:
  description: Repository root for a KServe InferenceService (C(s3://bucket/prefix)), or the local directory path.
  returned: always
  type: str
  sample: s3://models/triton
model_path:
  description: The model directory, as an object key prefix (S3) or a filesystem path (local).
  returned: always
  type: str
  sample: triton/iris
version:
  description: The model version.
  returned: always
  type: int
  sample: 1
config:
  description: The rendered C(config.pbtxt) text (empty with O(state=absent)).
  returned: always
  type: str
  sample: |
    name: "iris"
    platform: "onnxruntime_onnx"
    max_batch_size: 8
config_dict:
  description: The config as a dict with Triton's proto field names.
  returned: always
  type: dict
  sample: {"name": "iris", "platform": "onnxruntime_onnx", "backend": "onnxruntime", "max_batch_size": 8,
           "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}]}
uploaded:
  description: Keys written by this run (model first, config last); empty when nothing changed and in check mode.
  returned: always
  type: list
  elements: str
  sample: [triton/iris/1/model.onnx, triton/iris/config.pbtxt]
deleted:
  description: Keys removed by this run (O(state=absent), or the versions O(retire_versions) retired).
  returned: always
  type: list
  elements: str
  sample: []
retired:
  description: Other versions removed (or, in check mode, to be removed) because they do not fit the new config (O(retire_versions)).
  returned: always
  type: list
  elements: int
  sample: [1, 2]
sha256:
  description: sha256 of the model file (null with O(state=absent)).
  returned: always
  type: str
  sample: 9f2c0b6e5f0c4f6f8f1f5d9c3e0c2b1a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a
plan:
  description: What the run does (or would do in check mode), one entry per action with C(action), C(key) and C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"action": "upload", "key": "triton/iris/1/model.onnx", "reason": "missing"}]
"""

import copy

from ansible_collections.nga4m.platform.plugins.module_utils.ansible_module import ObjectStorageModule
from ansible_collections.nga4m.platform.plugins.module_utils.triton import (
    HAS_MODEL_CONFIG,
    HAS_ONNX,
    INSTANCE_KINDS,
    MODEL_CONFIG_IMPORT_ERROR,
    ONNX_IMPORT_ERROR,
    publish,
)

_TENSOR = {
    "name": {"type": "str", "required": True},
    "data_type": {"type": "str"},
    "dims": {"type": "list", "elements": "int"},
    "reshape": {"type": "list", "elements": "int"},
}


def argument_spec():
    return dict(
        name={"type": "str", "required": True},
        version={"type": "int", "default": 1},
        model_file={"type": "path"},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        prefix={"type": "str", "default": ""},
        max_batch_size={"type": "int", "default": 0},
        retire_versions={"type": "bool", "default": False},
        inputs={"type": "list", "elements": "dict", "options": dict(copy.deepcopy(_TENSOR), optional={"type": "bool", "default": False})},
        outputs={"type": "list", "elements": "dict", "options": copy.deepcopy(_TENSOR)},
        instance_group={
            "type": "list",
            "elements": "dict",
            "options": {
                "count": {"type": "int", "default": 1},
                "kind": {"type": "str", "choices": list(INSTANCE_KINDS), "default": "KIND_CPU"},
                "gpus": {"type": "list", "elements": "int"},
            },
        },
        dynamic_batching={
            "type": "dict",
            "options": {
                "preferred_batch_size": {"type": "list", "elements": "int"},
                "max_queue_delay_microseconds": {"type": "int"},
            },
        },
        version_policy={
            "type": "dict",
            "options": {
                "latest": {"type": "int"},
                "all": {"type": "bool"},
                "specific": {"type": "list", "elements": "int"},
            },
            "mutually_exclusive": [["latest", "all", "specific"]],
        },
    )


def main():
    module = ObjectStorageModule(argument_spec(), required_if=[["state", "present", ["model_file"]]])
    params = module.params
    if params["state"] == "present":
        module.require("onnx", HAS_ONNX, ONNX_IMPORT_ERROR)
        module.require("tritonclient[grpc]", HAS_MODEL_CONFIG, MODEL_CONFIG_IMPORT_ERROR)
    config_options = {
        key: params[key] for key in ("max_batch_size", "inputs", "outputs", "instance_group", "dynamic_batching", "version_policy")
    }
    result = module.run(
        publish,
        module.store(),
        params["prefix"],
        params["name"],
        params["version"],
        model_path=params["model_file"],
        config_options=config_options,
        check_mode=module.check_mode,
        state=params["state"],
        create_bucket=params["create_bucket"] if not params["local_path"] else None,
        retire_versions=params["retire_versions"],
    )
    module.exit_with(result)


if __name__ == "__main__":
    main()
