#!/usr/bin/python
# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module nga4m.platform.service_account_kubeconfig (thin wrapper of module_utils/sa_kubeconfig.py)."""

DOCUMENTATION = r"""
module: service_account_kubeconfig
short_description: Build a kubeconfig for a ServiceAccount from a bound TokenRequest token
version_added: 0.1.0
description:
  - Requests a bound token for a ServiceAccount through the C(serviceaccounts/<name>/token) subresource (TokenRequest)
    with an expiry, and assembles a kubeconfig with the cluster's server and CA data (read from the admin kubeconfig).
  - Idempotent. Given the currently stored kubeconfig in O(existing), it is returned unchanged while it targets the
    same server, CA and namespace and its token stays valid for more than O(renew_before_seconds).
  - Stores nothing itself; pair it with M(nga4m.platform.s3_object) or M(ansible.builtin.copy).
author:
  - NGA4M developers (@nga4m)
attributes:
  check_mode:
    support: full
    description: Reports whether a new token would be issued without requesting one (RV(kubeconfig) is then null).
  diff_mode:
    support: none
    description: The kubeconfig holds a token; it is never shown in a diff.
options:
  kubeconfig:
    description: Admin kubeconfig of the cluster (used to request the token and to read server and CA).
    type: path
    required: true
  context:
    description: Context in O(kubeconfig); its current context when omitted.
    type: str
  server:
    description: API server URL written into the kubeconfig, when the users of the kubeconfig reach the cluster under another address.
    type: str
  cluster_name:
    description: Name of the cluster and context inside the kubeconfig.
    type: str
    required: true
  namespace:
    description: Namespace of the ServiceAccount, also the context's default namespace.
    type: str
    required: true
  service_account:
    description: ServiceAccount name.
    type: str
    required: true
  expiration_seconds:
    description: Requested token lifetime (the API server may shorten it).
    type: int
    default: 7776000
  renew_before_seconds:
    description: Issue a new token when the stored one expires within this many seconds.
    type: int
    default: 604800
  audiences:
    description: Token audiences; the API server's default when empty.
    type: list
    elements: str
    default: []
  existing:
    description:
      - The kubeconfig currently stored (text), if any.
      - It holds a token and is returned as RV(kubeconfig) when kept, so it is not masked by the module; always set
        C(no_log) on the task.
    type: str
requirements:
  - kubernetes (Python library)
"""

EXAMPLES = r"""
- name: Keep or renew the deployer kubeconfig of sc1
  nga4m.platform.service_account_kubeconfig:
    kubeconfig: /etc/nga4m/sc1.kubeconfig
    cluster_name: sc1
    namespace: models
    service_account: model-deployer
    existing: "{{ stored.content | default(omit) }}"
  register: deployer
  no_log: true
"""

RETURN = r"""
kubeconfig:
  description: The kubeconfig text (the O(existing) one when kept); null in check mode when a token would be issued.
  returned: always
  type: str
renewed:
  description: Whether a new token was (or would be) issued.
  returned: always
  type: bool
expiration_timestamp:
  description: Expiry of the token in the returned kubeconfig.
  returned: always
  type: str
server:
  description: API server URL in the kubeconfig.
  returned: always
  type: str
"""

import traceback

from ansible_collections.nga4m.platform.plugins.module_utils.ansible_module import NGA4MModule
from ansible_collections.nga4m.platform.plugins.module_utils.sa_kubeconfig import ensure_kubeconfig, load_cluster

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:  # pragma: no cover
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()


def main():
    module = NGA4MModule(
        dict(
            kubeconfig=dict(type="path", required=True),
            context=dict(type="str"),
            server=dict(type="str"),
            cluster_name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            service_account=dict(type="str", required=True),
            expiration_seconds=dict(type="int", default=7776000),
            renew_before_seconds=dict(type="int", default=604800),
            audiences=dict(type="list", elements="str", default=[]),
            # Not no_log: the module returns it unchanged (masking would corrupt the result); use no_log on the task.
            existing=dict(type="str", no_log=False),
        ),
    )
    module.require("kubernetes", HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR)
    p = module.params
    if p["renew_before_seconds"] >= p["expiration_seconds"]:
        module.fail_json(msg="renew_before_seconds must be shorter than expiration_seconds, or every run would issue a new token")
    module.exit_with(module.run(_ensure, p, module.check_mode))


def _ensure(p, check_mode):
    cluster = load_cluster(p["kubeconfig"], p["context"])
    if p["server"]:
        cluster["server"] = p["server"]
    api = k8s_client.CoreV1Api(k8s_config.new_client_from_config(config_file=p["kubeconfig"], context=p["context"]))
    return ensure_kubeconfig(
        api, p["cluster_name"], cluster, p["namespace"], p["service_account"], existing=p["existing"],
        expiration_seconds=p["expiration_seconds"], renew_before_seconds=p["renew_before_seconds"],
        audiences=p["audiences"], check_mode=check_mode,
    )


if __name__ == "__main__":
    main()
