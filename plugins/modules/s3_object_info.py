#!/usr/bin/python
# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module nga4m.platform.s3_object_info (thin wrapper of module_utils/s3_object.py)."""

DOCUMENTATION = r"""
module: s3_object_info
short_description: Read one object of the shared object storage
version_added: 0.1.0
description:
  - Returns whether an object exists in an S3 bucket (through the minio SDK) or a local directory, its sha256 and
    size, and its content as text.
  - Never changes anything. A missing bucket or object is not an error (RV(exists=false)).
author:
  - NGA4M developers (@nga4m)
extends_documentation_fragment:
  - nga4m.platform.object_storage
attributes:
  check_mode:
    support: full
    description: Reads the same way in check mode.
  diff_mode:
    support: none
    description: Reads only.
options:
  key:
    description:
      - Object key inside the bucket or O(local_path), for example V(kubeconfigs/sc1).
    type: str
    required: true
  local_path:
    description:
      - A directory instead of an S3 bucket. Mutually exclusive with O(bucket) and O(endpoint).
    type: path
notes:
  - The content is returned as is; when it is a secret (a kubeconfig) set C(no_log) on the task.
"""

EXAMPLES = r"""
- name: Read a stored kubeconfig
  nga4m.platform.s3_object_info:
    endpoint: minio.storage.example.com:9000
    access_key: "{{ vault_s3_access_key }}"
    secret_key: "{{ vault_s3_secret_key }}"
    bucket: nga4m
    key: kubeconfigs/sc1
  register: stored
  no_log: true
"""

RETURN = r"""
key:
  description: Normalized object key.
  returned: always
  type: str
uri:
  description: C(s3://bucket/key) or the file path.
  returned: always
  type: str
exists:
  description: Whether the object exists.
  returned: always
  type: bool
sha256:
  description: sha256 of the content (null when missing).
  returned: always
  type: str
size:
  description: Size in bytes (null when missing).
  returned: always
  type: int
content:
  description: Content as text, undecodable bytes replaced (null when missing).
  returned: always
  type: str
"""

from ansible_collections.nga4m.platform.plugins.module_utils.ansible_module import ObjectStorageModule
from ansible_collections.nga4m.platform.plugins.module_utils.s3_object import read_object


def main():
    module = ObjectStorageModule({"key": {"type": "str", "required": True, "no_log": False}})
    module.exit_with(module.run(read_object, module.store(), module.params["key"]))


if __name__ == "__main__":
    main()
