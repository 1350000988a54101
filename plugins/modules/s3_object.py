#!/usr/bin/python
# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module nga4m.platform.s3_object (thin wrapper of module_utils/s3_object.py)."""

DOCUMENTATION = r"""
module: s3_object
short_description: Put, remove or read one object in the shared object storage
version_added: 0.1.0
description:
  - Makes one object in an S3 bucket (through the minio SDK) or a local directory match O(state).
  - Idempotent by checksum. The sha256 of the content is stored as object metadata (C(x-amz-meta-sha256)) and compared
    on the next run without downloading the object.
  - Creates the bucket with O(create_bucket=true).
author:
  - NGA4M developers (@nga4m)
extends_documentation_fragment:
  - nga4m.platform.object_storage
attributes:
  check_mode:
    support: full
    description: Computes the same C(changed) without writing (a missing bucket is only reported).
  diff_mode:
    support: full
    description: Shows the object's text before and after (a checksum only for binary, large or O(sensitive) objects).
options:
  key:
    description:
      - Object key inside the bucket or O(local_path), for example V(datasets/iris.csv). No C(..) segments.
    type: str
    required: true
  state:
    description:
      - V(present) writes O(content) or O(src) when the checksum differs; V(absent) removes the object.
      - To read an object use M(nga4m.platform.s3_object_info).
    type: str
    choices: [present, absent]
    default: present
  content:
    description:
      - Text content of the object. Mutually exclusive with O(src).
    type: str
  src:
    description:
      - File on the controller to upload. Mutually exclusive with O(content).
    type: path
  sensitive:
    description:
      - The content is a secret (a kubeconfig, credentials). It is kept out of the logs and out of the diff.
    type: bool
    default: false
  content_type:
    description:
      - Content type stored with the object.
    type: str
    default: application/octet-stream
  local_path:
    description:
      - A directory instead of an S3 bucket. Mutually exclusive with O(bucket) and O(endpoint).
    type: path
"""

EXAMPLES = r"""
- name: Create the bucket and a prefix marker
  nga4m.platform.s3_object:
    endpoint: minio.storage.example.com:9000
    secure: false
    access_key: "{{ vault_s3_access_key }}"
    secret_key: "{{ vault_s3_secret_key }}"
    bucket: nga4m
    create_bucket: true
    key: datasets/.keep
    content: ""

- name: Upload the iris data set
  nga4m.platform.s3_object:
    endpoint: minio.storage.example.com:9000
    access_key: "{{ vault_s3_access_key }}"
    secret_key: "{{ vault_s3_secret_key }}"
    bucket: nga4m
    key: datasets/iris.csv
    src: files/iris.csv
    content_type: text/csv
"""

RETURN = r"""
key:
  description: Normalized object key.
  returned: always
  type: str
  sample: datasets/iris.csv
uri:
  description: C(s3://bucket/key) or the file path.
  returned: always
  type: str
exists:
  description: Whether the object exists after the task.
  returned: always
  type: bool
sha256:
  description: sha256 of the object's content.
  returned: when the object exists
  type: str
size:
  description: Size in bytes.
  returned: when the object exists
  type: int
bucket_created:
  description: Whether the bucket was (or in check mode would be) created.
  returned: O(state=present)
  type: bool
"""

from ansible_collections.nga4m.platform.plugins.module_utils.ansible_module import ObjectStorageModule
from ansible_collections.nga4m.platform.plugins.module_utils.s3_object import ensure_object

ARGUMENT_SPEC = {
    "key": {"type": "str", "required": True, "no_log": False},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "content": {"type": "str"},
    "src": {"type": "path"},
    "sensitive": {"type": "bool", "default": False},
    "content_type": {"type": "str", "default": "application/octet-stream"},
}


def main():
    module = ObjectStorageModule(ARGUMENT_SPEC, mutually_exclusive=[["content", "src"]])
    params = module.params
    if params["sensitive"] and params["content"]:
        module.no_log_values.add(params["content"])
    result = module.run(
        ensure_object,
        module.store(),
        params["key"],
        state=params["state"],
        content=params["content"],
        src=params["src"],
        sensitive=params["sensitive"],
        check_mode=module.check_mode,
        create_bucket=params["create_bucket"] or bool(params["local_path"]),
        content_type=params["content_type"],
    )
    module.exit_with(result)


if __name__ == "__main__":
    main()
