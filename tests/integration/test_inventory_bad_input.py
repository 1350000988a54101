"""Bad inventories fail in preflight, with a message naming the host and variable, before any cluster is touched.

Each case writes a small inventory (one pc, two sc, one SSH node group) into a
temporary directory and runs site.yml. The kubeconfigs point at a closed
loopback port: had any later play started, it would fail differently (and
appear in the JSON output). The assertions: the run fails, every failed task
is in a ``Preflight | ...`` play, no other play ran, and the message carries
the expected words.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.playbook import REPO, run_playbook

SITE = REPO / "site.yml"
PREFLIGHT = REPO / "playbooks" / "preflight.yml"


def _kubeconfig(path: Path, name: str) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                # Port 9 on loopback is closed: touching the cluster would fail with a connection error.
                "clusters": [{"name": name, "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": name, "user": {"token": "unused"}}],
                "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
                "current-context": name,
            }
        )
    )
    return str(path)


def _base(tmp: Path) -> dict:
    cluster = {"ansible_connection": "local"}
    return {
        "all": {
            "vars": {"ansible_python_interpreter": sys.executable, "nga4m_namespace": "nga4m-system",
                     # what the roles' own checks need besides the defaults (test values, not secrets)
                     "object_storage_endpoint": "s3.example.com:9000", "object_storage_access_key": "test-access",
                     "object_storage_secret_key": "test-secret-key"},
            "children": {
                "pc": {
                    "vars": dict(cluster),
                    "hosts": {
                        "pc1": {"kubeconfig": _kubeconfig(tmp / "pc1.kubeconfig", "pc1"), "sysctl_tuning_method": "daemonset"}
                    },
                },
                "sc": {
                    "vars": dict(cluster),
                    "hosts": {
                        "sc1": {
                            "kubeconfig": _kubeconfig(tmp / "sc1.kubeconfig", "sc1"),
                            "context": "sc1",
                            "sysctl_tuning_method": "ssh",
                            "cluster_node_group": "sc1_nodes",
                            "prometheus_url": "http://sc1-node1.example.com:30090",
                        },
                        "sc2": {"kubeconfig": _kubeconfig(tmp / "sc2.kubeconfig", "sc2"), "sysctl_tuning_method": "daemonset",
                                "kube_prometheus_stack_prometheus_ingress_enabled": True,
                                "kube_prometheus_stack_prometheus_ingress_host": "prometheus.sc2.example.com",
                                "kube_prometheus_stack_prometheus_ingress_tls_secret": "prometheus-tls"},
                    },
                },
                "sc_nodes": {
                    "children": {
                        "sc1_nodes": {
                            "hosts": {
                                "sc1-node1": {
                                    "ansible_connection": "local",
                                    "sysctl_tuning_file": str(tmp / "nodes" / "sc1-node1.conf"),
                                    "sysctl_tuning_reload": False,
                                }
                            }
                        }
                    }
                },
            },
        }
    }


def _hosts(inv: dict, group: str) -> dict:
    return inv["all"]["children"][group]["hosts"]


def _missing_kubeconfig(inv, tmp):
    del _hosts(inv, "sc")["sc1"]["kubeconfig"]


def _kubeconfig_not_a_file(inv, tmp):
    _hosts(inv, "sc")["sc2"]["kubeconfig"] = str(tmp / "nowhere" / "sc2.kubeconfig")


def _duplicate_names(inv, tmp):
    _hosts(inv, "sc")["sc2"]["cluster_name"] = "sc1"


def _two_pc(inv, tmp):
    _hosts(inv, "pc")["pc2"] = dict(_hosts(inv, "pc")["pc1"])


def _no_sc(inv, tmp):
    del inv["all"]["children"]["sc"]
    del inv["all"]["children"]["sc_nodes"]


def _pc_and_sc(inv, tmp):
    _hosts(inv, "sc")["pc1"] = None


def _bad_cluster_name(inv, tmp):
    _hosts(inv, "sc")["sc2"]["cluster_name"] = "SC_Two"


def _url_without_scheme(inv, tmp):
    _hosts(inv, "sc")["sc1"]["prometheus_url"] = "prometheus.sc1.example.com:9090"


def _url_ftp(inv, tmp):
    _hosts(inv, "sc")["sc2"]["ingress_url"] = "ftp://models.sc2.example.com"


def _bad_object_storage_endpoint(inv, tmp):
    inv["all"]["vars"]["object_storage_endpoint"] = "s3 dot example dot com"


def _bad_bucket(inv, tmp):
    inv["all"]["vars"]["object_storage_bucket"] = "My_Bucket"


def _sysctl_not_integer(inv, tmp):
    _hosts(inv, "sc")["sc2"]["sysctl_tuning_extra_settings"] = {"vm.max_map_count": "lots"}


def _sysctl_negative_on_node(inv, tmp):
    node = inv["all"]["children"]["sc_nodes"]["children"]["sc1_nodes"]["hosts"]["sc1-node1"]
    node["sysctl_tuning_settings"] = {"fs.inotify.max_user_watches": -1}


def _sysctl_bad_key(inv, tmp):
    _hosts(inv, "pc")["pc1"]["sysctl_tuning_extra_settings"] = {"not a key": 1}


def _unknown_method(inv, tmp):
    _hosts(inv, "sc")["sc2"]["sysctl_tuning_method"] = "ansible"


def _missing_method(inv, tmp):
    del _hosts(inv, "pc")["pc1"]["sysctl_tuning_method"]


def _ssh_without_node_group(inv, tmp):
    del _hosts(inv, "sc")["sc1"]["cluster_node_group"]


def _ssh_node_group_unknown(inv, tmp):
    _hosts(inv, "sc")["sc1"]["cluster_node_group"] = "sc9_nodes"


def _context_not_string(inv, tmp):
    _hosts(inv, "sc")["sc1"]["context"] = {"name": "sc1"}


def _bad_namespace(inv, tmp):
    inv["all"]["vars"]["nga4m_namespace"] = "NGA4M System"


def _kserve_endpoint_with_scheme(inv, tmp):
    _hosts(inv, "sc")["sc1"]["kserve_s3_endpoint"] = "http://s3.example.com:9000"


def _role_spec_choice(inv, tmp):
    _hosts(inv, "pc")["pc1"]["mlflow_artifact_store"] = "gcs"


def _federation_url_not_the_node_port(inv, tmp):
    _hosts(inv, "sc")["sc1"]["prometheus_url"] = "https://prometheus.sc1.example.com"


def _federation_url_not_the_ingress(inv, tmp):
    _hosts(inv, "sc")["sc2"]["kube_prometheus_stack_federation_url"] = "http://prometheus.sc2.example.com"


def _federation_from_a_cluster_ip(inv, tmp):
    _hosts(inv, "sc")["sc1"]["kube_prometheus_stack_prometheus_service_type"] = "ClusterIP"


def _role_problems_on_two_clusters(inv, tmp):
    _hosts(inv, "pc")["pc1"]["mlflow_image_pull_policy"] = "Sometimes"
    _hosts(inv, "sc")["sc2"]["model_monitoring_port"] = 70000


CASES = [
    # id, mutation, words the failure message must contain
    ("missing-kubeconfig", _missing_kubeconfig, ["sc1", "kubeconfig", "missing required"]),
    ("kubeconfig-not-a-file", _kubeconfig_not_a_file, ["sc2", "kubeconfig", "not a file"]),
    ("duplicate-cluster-names", _duplicate_names, ["unique", "sc1, sc2", "'sc1'"]),
    ("two-pc-hosts", _two_pc, ["group 'pc'", "exactly one", "pc1, pc2"]),
    ("no-sc", _no_sc, ["group 'sc'", "at least one"]),
    ("cluster-in-pc-and-sc", _pc_and_sc, ["pc1", "both group pc and group sc"]),
    ("cluster-name-not-dns1123", _bad_cluster_name, ["sc2", "SC_Two", "DNS-1123"]),
    ("url-without-scheme", _url_without_scheme, ["sc1", "prometheus_url", "well-formed URL"]),
    ("url-ftp", _url_ftp, ["sc2", "ingress_url", "http"]),
    ("object-storage-endpoint", _bad_object_storage_endpoint, ["object_storage_endpoint", "host:port"]),
    ("object-storage-bucket", _bad_bucket, ["object_storage_bucket", "My_Bucket"]),
    ("sysctl-not-integer", _sysctl_not_integer, ["sc2", "vm.max_map_count", "lots", "integers"]),
    ("sysctl-negative-on-node", _sysctl_negative_on_node, ["sc1-node1", "fs.inotify.max_user_watches", ">= 0"]),
    ("sysctl-bad-key", _sysctl_bad_key, ["pc1", "not a key"]),
    ("unknown-sysctl-method", _unknown_method, ["sc2", "sysctl_tuning_method", "ssh, daemonset", "ansible"]),
    ("missing-sysctl-method", _missing_method, ["pc1", "sysctl_tuning_method"]),
    ("ssh-without-node-group", _ssh_without_node_group, ["sc1", "cluster_node_group", "sc_nodes"]),
    ("ssh-node-group-unknown", _ssh_node_group_unknown, ["sc1", "cluster_node_group", "sc9_nodes"]),
    ("context-not-a-string", _context_not_string, ["sc1", "context", "must be a string"]),
    ("namespace-not-dns1123", _bad_namespace, ["nga4m_namespace", "NGA4M"]),
    # the roles' own checks (their preflight entry points), for every cluster before any change
    ("role-check-kserve", _kserve_endpoint_with_scheme, ["[sc1]", "kserve_s3_endpoint must be host:port", "nothing was changed"]),
    ("role-argument-spec", _role_spec_choice, ["[pc1]", "mlflow_artifact_store", "gcs"]),
    # the URL the PC federates must follow from how each SC exposes its Prometheus
    ("federation-url-not-the-node-port", _federation_url_not_the_node_port,
     ["[pc1]", "sc1: the federation URL https://prometheus.sc1.example.com does not reach its Prometheus",
      "NodePort Service on port 30090", "http://<node address>:30090"]),
    ("federation-url-not-the-ingress", _federation_url_not_the_ingress,
     ["[pc1]", "sc2: the federation URL http://prometheus.sc2.example.com does not reach", "https://prometheus.sc2.example.com"]),
    ("federation-from-a-cluster-ip", _federation_from_a_cluster_ip, ["[pc1]", "sc1", "ClusterIP Service", "no other cluster reaches"]),
    ("role-problems-on-two-clusters", _role_problems_on_two_clusters,
     ["[pc1]", "mlflow_image_pull_policy", "Sometimes", "[sc2]", "model_monitoring_port must be 1-65535", "--limit 'all:!sc1:!sc2'"]),
]


def _write_inventory(tmp: Path, inv: dict) -> Path:
    path = tmp / "hosts.yml"
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def _failures(run) -> list[tuple[str, str, dict]]:
    """(play name, task name, result) of every failed host result."""
    out = []
    for play in run.data.get("plays", []):
        for task in play.get("tasks", []):
            for res in task.get("hosts", {}).values():
                if res.get("failed"):
                    out.append((play["play"]["name"], task["task"]["name"], res))
    return out


def _messages(res: dict) -> str:
    parts = [str(res.get("msg", ""))]
    parts += [str(item.get("msg", "")) for item in res.get("results", []) if item.get("failed")]
    return " ".join(parts)


ACCESS_PLAY = "Preflight | roles and cluster access"


def test_valid_base_inventory_stops_at_the_cluster_check_with_one_summary(tmp_path):
    """The control for the cases below: a valid inventory passes every inventory and role check and
    stops at the API-server check (the kubeconfigs point at a closed port), before any change, with
    one summary naming every cluster and how to leave the secondaries out."""
    inv = _write_inventory(tmp_path, _base(tmp_path))
    for playbook in (PREFLIGHT, SITE):
        run = run_playbook(playbook, inventory=inv)
        assert run.rc != 0 and run.changed_total() == 0, run.stdout[-4000:]
        failures = _failures(run)
        assert [f[1] for f in failures if f[0] != ACCESS_PLAY] == [], failures
        assert {f[1] for f in failures} == {"Ask the API server whether this run may install cluster-wide objects (SelfSubjectAccessReview)",
                                            "Stop with one summary when any cluster would fail"}, failures
        ran = [p["play"]["name"] for p in run.data["plays"] if p.get("tasks")]
        assert all(name.startswith("Preflight") for name in ran), f"plays after preflight ran: {ran}"
        summaries = [_messages(f[2]) for f in failures if _messages(f[2]).startswith("Preflight failed")]
        assert len(summaries) == 1, failures
        summary = summaries[0]
        assert summary.startswith("Preflight failed on 3 of 3 clusters; nothing was changed."), summary
        for host in ("pc1", "sc1", "sc2"):
            assert f"[{host}] API server: cannot reach or authenticate with kubeconfig {tmp_path / (host + '.kubeconfig')}" in summary
        assert "Connection refused" in summary and "(context sc1)" in summary
        assert "--limit 'all:!sc1:!sc2'" in summary, summary
        # every cluster stopped there, and the summary after the recap (callback cluster_summary) says so
        assert "Stopped: preflight failed on pc1, sc1, sc2 (the summary is on pc1)" in " ".join(_messages(f[2]) for f in failures)
        assert "NGA4M clusters: 0 of 3 completed" in run.stderr, run.stderr[-2000:]
        for host in ("pc1", "sc1", "sc2"):
            assert f"{host} ({'pc' if host == 'pc1' else 'sc'}) did not converge: failed at task 'Stop with one summary" in run.stderr


def test_shipped_prod_inventory_passes_every_check_with_only_secrets_and_endpoints_filled(tmp_path):
    """inventories/prod as shipped, with the environment its comments ask for (S3 keys, a kubeconfig per
    cluster): every inventory and role check passes (the kustomize download is verified by a checksum the
    role knows; each SC's federation URL matches how it exposes Prometheus), and the run stops only at the
    API-server check because the kubeconfigs point at a closed port."""
    for host in ("pc1", "sc1", "sc2"):
        path = Path(_kubeconfig(tmp_path / f"{host}.yaml", host))
        config = yaml.safe_load(path.read_text())
        config["contexts"][0]["name"] = config["current-context"] = f"{host}-admin"
        path.write_text(yaml.safe_dump(config))
    env = {"NGA4M_KUBECONFIG_DIR": str(tmp_path), "NGA4M_S3_ACCESS_KEY": "test-access", "NGA4M_S3_SECRET_KEY": "test-secret-key"}
    run = run_playbook(PREFLIGHT, inventory=REPO / "inventories" / "prod", env=env)
    assert run.rc != 0 and run.changed_total() == 0, run.stdout[-4000:]
    summaries = [_messages(f[2]) for f in _failures(run) if _messages(f[2]).startswith("Preflight failed")]
    assert len(summaries) == 1, _failures(run)
    problems = re.split(r" \[(?:pc1|sc1|sc2)\] | \| ", summaries[0].split("nothing was changed.", 1)[1].split(" Fix these", 1)[0])
    problems = [p.strip() for p in problems if p.strip()]
    assert len(problems) == 3, problems
    assert all(p.startswith("API server: cannot reach") for p in problems), problems


@pytest.mark.parametrize(("mutate", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inventory_fails_in_preflight(tmp_path, mutate, words):
    inv = copy.deepcopy(_base(tmp_path))
    mutate(inv, tmp_path)
    run = run_playbook(SITE, inventory=_write_inventory(tmp_path, inv))
    assert run.rc != 0, f"site.yml accepted a bad inventory\n{run.stdout[-4000:]}"
    assert run.data, f"no JSON output\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    failures = _failures(run)
    assert failures, f"no failed task\n{run.stdout[-4000:]}"
    ran = [p["play"]["name"] for p in run.data["plays"] if p.get("tasks")]
    assert all(name.startswith("Preflight") for name in ran), f"plays after preflight ran: {ran}"
    assert all(failure[0].startswith("Preflight") for failure in failures), failures
    text = " ".join(_messages(failure[2]) for failure in failures)
    for word in words:
        assert word in text, f"{word!r} not in failure message(s): {text}"
    assert not (tmp_path / "nodes").exists(), "a node was touched"
    if any(not failure[0].endswith("inventory topology") for failure in failures):
        # the clusters the run reached are reported as not converged after the recap (callback cluster_summary)
        assert re.search(r"NGA4M clusters: 0 of \d+ completed", run.stderr), run.stderr[-2000:]
