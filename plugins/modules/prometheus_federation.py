#!/usr/bin/python
# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: render Prometheus federation scrape configs for secondary clusters."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prometheus_federation
short_description: Render Prometheus federation scrape configs for secondary clusters
version_added: 0.1.0
description:
  - Builds one C(/federate) scrape job per secondary cluster (SC) for the primary cluster's Prometheus.
  - Each job has C(honor_labels=true), C(match[]) selectors built from namespaces and/or raw series selectors,
    and a static target labelled with the cluster name, so the output is usable directly as kube-prometheus-stack
    C(prometheus.prometheusSpec.additionalScrapeConfigs).
  - Jobs are sorted by cluster name, so the output is deterministic.
  - Optionally writes the result to O(dest) (atomically, only when the content changes) as Helm values, a bare
    scrape-config list or a full Prometheus configuration, and returns a Kubernetes Secret for
    C(additionalScrapeConfigsSecret).
  - Needs no connection to the clusters; O(dest) is written on the host the task runs on (usually C(localhost)).
author:
  - NGA4M developers (@nga4m)
options:
  clusters:
    description:
      - The secondary clusters to federate, typically built from the C(sc) inventory group's hostvars.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Unique cluster name. Becomes the job name suffix (C(<job_prefix>-<name>)) and the value of the O(cluster_label) label.
          - Names that differ only in case (V(sc1), V(SC1)) are refused.
        type: str
        required: true
      url:
        description:
          - Base URL of the SC Prometheus, for example V(https://prometheus.sc1.example.com) or V(http://10.0.0.5:9090).
          - A path prefix is kept, V(https://h.example/prometheus) scrapes C(/prometheus/federate).
          - Without a port, 443 (https) or 80 (http) is used.
          - Two clusters may not federate the same Prometheus (same scheme, host, port and path once normalised);
            the primary would store every series twice under two cluster labels.
        type: str
        required: true
      scheme:
        description:
          - Overrides the scheme taken from O(clusters[].url).
        type: str
        choices: [http, https]
      namespaces:
        description:
          - Kubernetes namespaces whose series to federate; becomes C({namespace=~"ns1|ns2"}).
          - Overrides the global O(namespaces); V([]) means none for this cluster.
        type: list
        elements: str
      match:
        description:
          - Raw PromQL series selectors added to C(match[]), for example V(nv_inference_count) or V({job="kserve"}).
          - Checked with a real PromQL parser (invalid regular expressions are refused here, not at scrape time).
          - With namespaces, each is narrowed to them unless O(clusters[].match_scope) is V(any).
          - Overrides the global O(match).
        type: list
        elements: str
      match_scope:
        description:
          - Overrides the global O(match_scope) for this cluster.
        type: str
        choices: [namespaces, any]
      scrape_interval:
        description:
          - Scrape interval for this cluster (Prometheus duration such as V(30s), V(1m30s)). Overrides O(scrape_interval).
        type: str
      scrape_timeout:
        description:
          - Scrape timeout for this cluster, not longer than its interval. Overrides O(scrape_timeout).
        type: str
      labels:
        description:
          - Extra target labels (string values) added next to the cluster label.
        type: dict
      ca_file:
        description:
          - CA bundle path B(inside the Prometheus pod) used to verify the SC Prometheus certificate.
        type: str
      cert_file:
        description:
          - Client certificate path inside the Prometheus pod. Requires O(clusters[].key_file).
        type: str
      key_file:
        description:
          - Client key path inside the Prometheus pod. Requires O(clusters[].cert_file).
        type: str
      insecure_skip_verify:
        description:
          - Skip verification of the SC Prometheus certificate. Only for tests.
        type: bool
      server_name:
        description:
          - Server name (SNI) expected in the SC Prometheus certificate.
        type: str
      username:
        description:
          - Basic auth user name. Needs O(clusters[].password_file) or O(clusters[].password).
        type: str
      password:
        description:
          - Basic auth password, inline. Prefer O(clusters[].password_file).
          - The module's returned values and diff never hold it (it reads C(********)); the file written to O(dest)
            holds it in clear text and gets mode V(0600) unless O(mode) is given.
        type: str
      password_file:
        description:
          - Path B(inside the Prometheus pod) of a file holding the basic auth password, for example a Secret mounted
            through C(prometheus.prometheusSpec.secrets) at C(/etc/prometheus/secrets/<secret>/<key>).
        type: str
      bearer_token:
        description:
          - Bearer token, inline (rendered as C(authorization.credentials)). Prefer O(clusters[].credentials_file).
          - The module's returned values and diff never hold it (it reads C(********)); the file written to O(dest)
            holds it in clear text and gets mode V(0600) unless O(mode) is given.
        type: str
      credentials_file:
        description:
          - Path inside the Prometheus pod of a file holding the bearer token (rendered as C(authorization.credentials_file)).
        type: str
        aliases: [bearer_token_file]
  job_prefix:
    description:
      - Prefix of the job names, C(<job_prefix>-<cluster name>).
    type: str
    default: federate
  cluster_label:
    description:
      - Name of the target label that carries the cluster name.
    type: str
    default: cluster
  namespace_label:
    description:
      - Label name the O(namespaces) selector matches on.
    type: str
    default: namespace
  scrape_interval:
    description:
      - Default scrape interval (Prometheus duration).
    type: str
    default: 30s
  scrape_timeout:
    description:
      - Default scrape timeout (Prometheus duration, not longer than the interval).
      - When neither this nor O(clusters[].scrape_timeout) is set, the timeout is the shorter of V(10s) and the interval.
    type: str
  namespaces:
    description:
      - Default namespaces to federate for clusters that do not set their own.
    type: list
    elements: str
  match:
    description:
      - Default raw series selectors for clusters that do not set their own.
    type: list
    elements: str
  match_scope:
    description:
      - How raw O(clusters[].match) selectors relate to O(clusters[].namespaces) when a cluster has both.
      - V(namespaces) narrows each raw selector to the namespaces (adds the namespace matcher to it) and federates
        only what the narrowed selectors pick, so a raw selector never reaches series of other namespaces.
      - V(any) federates the namespaces and, beside them, the raw selectors as given. Prometheus ORs C(match[]),
        so the raw selectors then reach every namespace.
      - Without namespaces (V([])), raw selectors are federated as given either way.
    type: str
    choices: [namespaces, any]
    default: namespaces
  dest:
    description:
      - Write the rendered configuration to this file on the controller, in O(format).
      - The file is replaced atomically and only when its content changes. Its directory must exist.
      - When a cluster carries an inline O(clusters[].password) or O(clusters[].bearer_token), the file holds it in
        clear text, so unless O(mode) is given the file mode defaults to V(0600) (an existing file is tightened to it,
        which reports a change). Otherwise, without O(mode), a new file gets the umask default.
    type: path
  format:
    description:
      - Layout of the file written to O(dest).
      - "V(helm_values) is C({prometheus: {prometheusSpec: {additionalScrapeConfigs: [...]}}}) for kube-prometheus-stack."
      - V(scrape_configs) is the bare list of jobs.
      - "V(prometheus_config) is C({scrape_configs: [...]}), a complete Prometheus configuration for tests or a standalone server."
    type: str
    choices: [helm_values, scrape_configs, prometheus_config]
    default: helm_values
  secret:
    description:
      - When set, also return RV(secret), a Kubernetes Secret holding the scrape configs as YAML, for
        C(prometheus.prometheusSpec.additionalScrapeConfigsSecret).
    type: dict
    suboptions:
      name:
        description: Secret name.
        type: str
        default: additional-scrape-configs
      namespace:
        description: Secret namespace.
        type: str
        default: monitoring
      key:
        description: Key in the Secret's data holding the YAML list.
        type: str
        default: additional-scrape-configs.yaml
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Shows the old and new content of O(dest), with every inline password or token, old and new, replaced by a
        marker saying whether it changed.
  platform:
    platforms: posix
notes:
  - Inline O(clusters[].password) and O(clusters[].bearer_token) never appear in RV(scrape_configs), RV(secret) or
    the diff, however they are quoted (the module replaces them by C(********) itself, rather than relying on
    Ansible's masking of the exact string). Use the C(*_file) options with Secrets mounted into Prometheus
    (the usual kube-prometheus-stack way), or read the real values from O(dest).
  - Give every SC Prometheus C(externalLabels) with its cluster name as well, and keep C(match[]) selectors of
    different SCs disjoint from the primary cluster's own series to avoid duplicates.
requirements:
  - promql-parser (Python; checks O(match) selectors with a real PromQL parser)
seealso:
  - name: Prometheus federation
    description: Upstream documentation of the C(/federate) endpoint.
    link: https://prometheus.io/docs/prometheus/latest/federation/
"""

EXAMPLES = r"""
- name: Render Helm values federating every SC of the inventory
  nga4m.platform.prometheus_federation:
    # Each host of group "sc" defines a variable nga4m_federation, e.g.
    #   nga4m_federation:
    #     name: "{{ inventory_hostname }}"
    #     url: https://prometheus.sc1.example.com
    #     ca_file: /etc/prometheus/secrets/sc-ca/ca.crt
    #     username: federate
    #     password_file: /etc/prometheus/secrets/sc1-federate/password
    clusters: "{{ groups['sc'] | map('extract', hostvars, 'nga4m_federation') | list }}"
    namespaces: [models]
    scrape_interval: 30s
    dest: "{{ playbook_dir }}/.rendered/federation-values.yml"
    format: helm_values
    mode: "0600"
  register: federation

- name: Build the cluster list with a per-host loop
  ansible.builtin.set_fact:
    federation_clusters: >-
      {{ federation_clusters | default([]) + [{
           'name': item,
           'url': hostvars[item].prometheus_url,
           'namespaces': hostvars[item].model_namespaces | default(['models']),
           'credentials_file': '/etc/prometheus/secrets/federate-token/' ~ item}] }}
  loop: "{{ groups['sc'] }}"

- name: Render federation jobs and a Secret for additionalScrapeConfigsSecret
  nga4m.platform.prometheus_federation:
    clusters: "{{ federation_clusters }}"
    match:
      - '{__name__=~"nv_inference_.*"}'
    secret:
      name: federation-scrape-configs
      namespace: monitoring
  register: federation

- name: Apply the Secret on the primary cluster
  kubernetes.core.k8s:
    definition: "{{ federation.secret }}"
    state: present

- name: Pass the jobs directly as Helm values
  kubernetes.core.helm:
    name: kube-prometheus-stack
    chart_ref: prometheus-community/kube-prometheus-stack
    release_namespace: monitoring
    values:
      prometheus:
        prometheusSpec:
          additionalScrapeConfigs: "{{ federation.scrape_configs }}"

- name: A full Prometheus config for a standalone server, checked with promtool
  nga4m.platform.prometheus_federation:
    clusters:
      - name: sc1
        url: http://127.0.0.1:9091
        namespaces: [models]
    scrape_interval: 15s
    dest: /tmp/federation-prometheus.yml
    format: prometheus_config
"""

RETURN = r"""
scrape_configs:
  description:
    - One federation job per cluster, sorted by cluster name, ready for C(additionalScrapeConfigs).
    - Inline passwords and tokens appear as C(********); C(*_file) paths appear as given.
  returned: success
  type: list
  elements: dict
  sample:
    - job_name: federate-sc1
      honor_labels: true
      metrics_path: /federate
      scheme: https
      scrape_interval: 30s
      scrape_timeout: 10s
      params:
        match[]:
          - '{namespace=~"models"}'
      static_configs:
        - targets: [prometheus.sc1.example.com:443]
          labels:
            cluster: sc1
      basic_auth:
        username: federate
        password_file: /etc/prometheus/secrets/sc1-federate/password
job_names:
  description: The job names, in output order.
  returned: success
  type: list
  elements: str
  sample: [federate-sc1, federate-sc2]
secret:
  description:
    - Kubernetes Secret with the scrape configs as YAML under O(secret.key).
    - Inline passwords and tokens appear in it as C(********), so with them it cannot be applied as is; use the
      C(*_file) options, whose paths it holds as given.
  returned: when O(secret) is set
  type: dict
  sample:
    apiVersion: v1
    kind: Secret
    metadata:
      name: additional-scrape-configs
      namespace: monitoring
    type: Opaque
    stringData:
      additional-scrape-configs.yaml: "- job_name: federate-sc1\n  honor_labels: true\n  ..."
dest:
  description: Path of the file written, as given.
  returned: when O(dest) is set
  type: str
  sample: /srv/nga4m/federation-values.yml
"""

import os
import tempfile

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.nga4m.platform.plugins.module_utils.ansible_module import NGA4MModule
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.federation import (
    DEFAULT_CLUSTER_LABEL,
    DEFAULT_JOB_PREFIX,
    DEFAULT_NAMESPACE_LABEL,
    DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_SECRET_KEY,
    DEFAULT_SECRET_NAME,
    DEFAULT_SECRET_NAMESPACE,
    FORMATS,
    MATCH_SCOPES,
    SCHEMES,
    SECRET_FILE_MODE,
    dest_file_mode,
    has_inline_secrets,
    redact_jobs,
    redacted_diff,
    render_file_text,
    render_scrape_configs,
    render_secret,
    to_yaml,
)

CLUSTER_SPEC = dict(
    name=dict(type="str", required=True),
    url=dict(type="str", required=True),
    scheme=dict(type="str", choices=list(SCHEMES)),
    namespaces=dict(type="list", elements="str"),
    match=dict(type="list", elements="str"),
    match_scope=dict(type="str", choices=list(MATCH_SCOPES)),
    scrape_interval=dict(type="str"),
    scrape_timeout=dict(type="str"),
    labels=dict(type="dict"),
    ca_file=dict(type="str"),
    cert_file=dict(type="str"),
    key_file=dict(type="str", no_log=False),
    insecure_skip_verify=dict(type="bool"),
    server_name=dict(type="str"),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    password_file=dict(type="str", no_log=False),
    bearer_token=dict(type="str", no_log=True),
    credentials_file=dict(type="str", aliases=["bearer_token_file"], no_log=False),
)

ARGUMENT_SPEC = dict(
    clusters=dict(type="list", elements="dict", required=True, options=CLUSTER_SPEC),
    job_prefix=dict(type="str", default=DEFAULT_JOB_PREFIX),
    cluster_label=dict(type="str", default=DEFAULT_CLUSTER_LABEL),
    namespace_label=dict(type="str", default=DEFAULT_NAMESPACE_LABEL),
    scrape_interval=dict(type="str", default=DEFAULT_SCRAPE_INTERVAL),
    scrape_timeout=dict(type="str"),
    namespaces=dict(type="list", elements="str"),
    match=dict(type="list", elements="str"),
    match_scope=dict(type="str", choices=list(MATCH_SCOPES), default="namespaces"),
    dest=dict(type="path"),
    format=dict(type="str", choices=list(FORMATS), default="helm_values"),
    secret=dict(
        type="dict",
        no_log=False,
        options=dict(
            name=dict(type="str", default=DEFAULT_SECRET_NAME),
            namespace=dict(type="str", default=DEFAULT_SECRET_NAMESPACE),
            key=dict(type="str", default=DEFAULT_SECRET_KEY, no_log=False),
        ),
    ),
)


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise NGA4MError(f"dest: cannot read {path}: {to_native(err)}; check the path and its permissions") from None


def _write_atomically(module, path, content, private=False):
    """Replace ``path`` with ``content``; ``private``: the new content is never readable by group or others."""
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=".prometheus_federation.", dir=directory)  # created 0600
    except OSError as err:
        raise NGA4MError(f"dest: cannot create a file in {directory}: {to_native(err)}; check that it exists and is writable") from None
    umask = None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        if private:
            # atomic_move gives the temporary file the mode of an existing dest (tighten that first) and
            # a new dest the umask's mode (mask group and others): no moment with the secret world-readable.
            if os.path.exists(path):
                os.chmod(path, int(SECRET_FILE_MODE, 8))
            umask = os.umask(0o077)
        module.atomic_move(tmp, path, unsafe_writes=module.params["unsafe_writes"])
    except OSError as err:
        raise NGA4MError(f"dest: cannot write {path}: {to_native(err)}; check the path and its permissions") from None
    finally:
        if umask is not None:
            os.umask(umask)
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = NGA4MModule(ARGUMENT_SPEC, add_file_common_args=True)
    params = module.params
    result = dict(changed=False)
    try:
        jobs = render_scrape_configs(
            [{key: value for key, value in cluster.items() if value is not None} for cluster in params["clusters"]],
            job_prefix=params["job_prefix"],
            cluster_label=params["cluster_label"],
            namespace_label=params["namespace_label"],
            scrape_interval=params["scrape_interval"],
            scrape_timeout=params["scrape_timeout"],
            namespaces=params["namespaces"],
            match=params["match"],
            match_scope=params["match_scope"],
        )
        if has_inline_secrets(params["clusters"]):
            module.warn(
                "A cluster carries an inline password or bearer_token: Ansible masks it in the returned scrape_configs/secret "
                "and the rendered output holds it in clear text. Prefer password_file/credentials_file with Secrets mounted into Prometheus."
            )
        # Results carry no inline secret, masked or escaped: only the file written to dest holds them.
        shown = redact_jobs(jobs)
        result["scrape_configs"] = shown
        result["job_names"] = [job["job_name"] for job in jobs]
        list_text = to_yaml(jobs, header=False) if params["dest"] else None
        if params["secret"] is not None:
            result["secret"] = render_secret(shown, **params["secret"])
        dest = params["dest"]
        if dest:
            result["dest"] = dest
            if os.path.isdir(dest):
                raise NGA4MError(f"dest: {dest} is a directory; give a file path such as {os.path.join(dest, 'federation.yml')}")
            directory = os.path.dirname(dest) or "."
            if not os.path.isdir(directory):
                raise NGA4MError(f"dest: directory {directory} does not exist; create it first (ansible.builtin.file state=directory)")
            after = render_file_text(jobs, params["format"], list_text)
            # Inline secrets are written in clear text: without an explicit mode the file gets 0600.
            mode = dest_file_mode(params["clusters"], params["mode"])
            private = params["mode"] is None and mode == SECRET_FILE_MODE
            before = _read(dest)
            if before != after:
                result["changed"] = True
                if not module.check_mode:
                    _write_atomically(module, dest, after, private=private)
            if module._diff:
                shown_before, shown_after = redacted_diff(before, jobs, params["format"])
                result["diff"] = dict(before=shown_before, after=shown_after, before_header=dest, after_header=dest)
            if os.path.exists(dest) or not module.check_mode:
                file_args = module.load_file_common_arguments(params, path=dest)
                file_args["mode"] = mode
                result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    except NGA4MError as err:
        module.fail_from(err)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
