"""Unit tests for plugins/module_utils/kubeflow.py (phase split, dashboard link merge, result pairing)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from ansible_collections.nga4m.platform.plugins.module_utils import kubeflow as kf
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "kubeflow_manifests"
LINK = {"type": "item", "link": "/mlflow/", "text": "MLflow", "icon": "check-all"}
DASHBOARD_CMS = [
    {"namespace": "kubeflow", "name": "centraldashboard-config", "key": "links"},
    {"namespace": "kubeflow", "name": "dashboard-config", "key": "links"},
]


def obj(kind, name, namespace=None, api_version="v1", labels=None, **extra):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


def test_split_phases_orders_by_kind_namespace_and_label():
    docs = [
        obj("Deployment", "ml-pipeline", "kubeflow", "apps/v1"),
        obj("Namespace", "kubeflow"),
        obj("CustomResourceDefinition", "widgets.example.nga4m.io", api_version="apiextensions.k8s.io/v1",
            labels={"app.kubernetes.io/instance": "cert-manager"}),
        obj("Deployment", "cert-manager-webhook", "cert-manager", "apps/v1"),
        obj("ValidatingWebhookConfiguration", "cert-manager-webhook", api_version="admissionregistration.k8s.io/v1",
            labels={"app.kubernetes.io/instance": "cert-manager"}),
        obj("Widget", "w", "kubeflow", "example.nga4m.io/v1"),
    ]
    phases = kf.split_phases(docs)
    assert [d["kind"] for d in phases["namespaces"]] == ["Namespace"]
    assert phases["crd_names"] == ["widgets.example.nga4m.io"]  # a labelled CRD still goes first
    assert [d["kind"] for d in phases["cert_manager"]] == ["Deployment", "ValidatingWebhookConfiguration"]
    assert [d["kind"] for d in phases["rest"]] == ["Deployment", "Widget"]
    assert phases["cert_manager_deployments"] == [{"namespace": "cert-manager", "name": "cert-manager-webhook"}]
    assert phases["counts"] == {"namespaces": 1, "crds": 1, "cert_manager": 2, "rest": 2, "total": 6}


def test_split_phases_parses_yaml_text_and_deduplicates_last_wins():
    text = "---\n" + "\n---\n".join(
        json.dumps(d) for d in [obj("ConfigMap", "a", "ns", data={"v": "1"}), None, obj("ConfigMap", "a", "ns", data={"v": "2"})]
    )
    phases = kf.split_phases([text, "kind: List\napiVersion: v1\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: x}}\n"])
    assert [d["data"]["v"] for d in phases["rest"]] == ["2"]
    assert phases["namespaces"][0]["metadata"]["name"] == "x"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("a: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "non-object document"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "without apiVersion, kind or metadata.name"),
    ],
)
def test_split_phases_rejects_bad_build_output(text, needle):
    with pytest.raises(NGA4MError, match=needle):
        kf.split_phases(text)


def test_split_phases_injects_the_dashboard_link_once():
    cm = obj("ConfigMap", "centraldashboard-config", "kubeflow", data={"links": json.dumps({"menuLinks": []})})
    other = obj("ConfigMap", "unrelated", "kubeflow", data={"links": "{}"})
    phases = kf.split_phases([cm, other], dashboard_configmaps=DASHBOARD_CMS, menu_link=LINK)
    first = phases["rest"][0]["data"]["links"]
    assert kf.count_menu_links(first, "/mlflow/") == 1
    assert phases["rest"][1]["data"]["links"] == "{}"
    assert cm["data"]["links"] == json.dumps({"menuLinks": []})  # input not mutated
    again = kf.split_phases([phases["rest"][0]], dashboard_configmaps=DASHBOARD_CMS, menu_link=LINK)
    assert again["rest"][0]["data"]["links"] == first  # stable: re-applying changes nothing


def test_add_menu_link_is_idempotent_and_keeps_input_when_present():
    once = kf.add_menu_link('{"menuLinks": [{"link": "/jupyter/"}]}', LINK)
    assert json.loads(once)["menuLinks"][-1] == LINK
    assert kf.add_menu_link(once, LINK) is once
    assert kf.count_menu_links(once, "/mlflow/") == 1
    assert json.loads(kf.add_menu_link("", LINK)) == {"menuLinks": [LINK]}


@pytest.mark.parametrize(
    "links, link, needle",
    [
        ("{not json", LINK, "not valid JSON"),
        ("[]", LINK, "must be an object"),
        ('{"menuLinks": {}}', LINK, "not a list"),
        ("{}", {"text": "x"}, "non-empty 'link'"),
    ],
)
def test_add_menu_link_errors(links, link, needle):
    with pytest.raises(NGA4MError, match=needle):
        kf.add_menu_link(links, link)


def test_failed_objects_pairs_definitions_with_errors():
    defs = [obj("ConfigMap", "a", "ns"), obj("Widget", "w", "ns", "example.nga4m.io/v1")]
    result = {"changed": True, "result": {"results": [{"changed": True}, {"changed": False, "error": {"msg": "boom"}}]}}
    failed = kf.failed_objects(defs, result)
    assert [(f["ref"], f["error"]) for f in failed] == [("Widget ns/w", "boom")]
    assert kf.failed_objects(defs[:1], {"changed": False, "error": {"msg": "one"}})[0]["error"] == "one"
    assert kf.failed_objects(defs, {"failed": True, "msg": "unreachable"})[1]["error"] == "unreachable"
    assert kf.failed_objects(defs, {"skipped": True}) == []
    assert kf.failed_objects(defs[:1], {"changed": True, "result": {"kind": "ConfigMap"}}) == []


def test_crds_and_deployments_pending():
    crds = [
        {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Established", "status": "True"}]}},
        {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Established", "status": "False"}]}},
    ]
    assert kf.crds_pending(crds, ["a", "b", "c"]) == ["b", "c"]
    deps = [{"metadata": {"namespace": "kubeflow", "name": "ml-pipeline"},
             "status": {"conditions": [{"type": "Available", "status": "True"}]}}]
    wanted = [{"namespace": "kubeflow", "name": "ml-pipeline"}, {"namespace": "istio-system", "name": "istiod"}]
    assert kf.deployments_pending(deps, wanted) == ["istio-system/istiod"]


def test_pick_configmaps_in_candidate_order():
    res = [obj("ConfigMap", "dashboard-config", "kubeflow", data={"links": "{}"}),
           obj("ConfigMap", "centraldashboard-config", "kubeflow", data={"settings": "{}"})]
    assert kf.pick_configmaps(res, DASHBOARD_CMS) == [
        {"namespace": "kubeflow", "name": "dashboard-config", "key": "links", "value": "{}"}
    ]


def test_dockerconfigjson():
    doc = json.loads(kf.dockerconfigjson([{"registry": "r.example", "username": "u", "password": "p"}]))
    assert doc["auths"]["r.example"]["auth"] == base64.b64encode(b"u:p").decode()
    with pytest.raises(NGA4MError, match="entry #0"):
        kf.dockerconfigjson([{"registry": "r.example", "username": "u", "password": ""}])


def test_fixture_builds_into_the_expected_phases():
    out = subprocess.run(["kubectl", "kustomize", str(FIXTURE / "example")], capture_output=True, text=True, check=True)
    phases = kf.split_phases(out.stdout, dashboard_configmaps=DASHBOARD_CMS, menu_link=LINK)
    assert sorted(phases["crd_names"]) == ["clusterissuers.cert-manager.io", "poddefaults.kubeflow.org",
                                           "virtualservices.networking.istio.io", "widgets.example.nga4m.io"]
    assert {d["kind"] for d in phases["cert_manager"]} == {"Deployment", "Service", "ValidatingWebhookConfiguration"}
    kinds = {d["kind"] for d in phases["rest"]}
    assert {"Widget", "ClusterIssuer", "ValidatingWebhookConfiguration", "ConfigMap"} <= kinds
