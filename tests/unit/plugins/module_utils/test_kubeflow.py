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
        obj("StatefulSet", "metadata-db", "kubeflow", "apps/v1"),
        obj("Deployment", "old-style", "kubeflow", "extensions/v1beta1"),
    ]
    phases = kf.split_phases(docs)
    assert [d["kind"] for d in phases["namespaces"]] == ["Namespace"]
    assert phases["crd_names"] == ["widgets.example.nga4m.io"]  # a labelled CRD still goes first
    assert [d["kind"] for d in phases["cert_manager"]] == ["Deployment", "ValidatingWebhookConfiguration"]
    assert [d["kind"] for d in phases["rest"]] == ["Deployment", "Widget", "StatefulSet", "Deployment"]
    # what the role waits for comes from the build: its apps/v1 Deployments and StatefulSets, whatever their names
    assert phases["cert_manager_workloads"] == [{"kind": "Deployment", "namespace": "cert-manager", "name": "cert-manager-webhook"}]
    assert phases["workloads"] == [{"kind": "Deployment", "namespace": "kubeflow", "name": "ml-pipeline"},
                                   {"kind": "StatefulSet", "namespace": "kubeflow", "name": "metadata-db"}]
    assert phases["counts"] == {"namespaces": 1, "crds": 1, "cert_manager": 2, "rest": 4, "total": 8}
    assert phases["unsubstituted"] == []


def test_split_phases_names_objects_left_with_kustomize_variables():
    phases = kf.split_phases(_build("example", "common/unsubstituted"))
    assert phases["unsubstituted"] == ["Profile $(profile-name)"]


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


def test_crds_pending():
    crds = [
        {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Established", "status": "True"}]}},
        {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Established", "status": "False"}]}},
    ]
    assert kf.crds_pending(crds, ["a", "b", "c"]) == ["b", "c"]


def _workload(kind, name, generation=2, observed=2, replicas=1, **status):
    return {"kind": kind, "metadata": {"namespace": "kubeflow", "name": name, "generation": generation},
            "spec": {"replicas": replicas}, "status": {"observedGeneration": observed, **status}}


AVAILABLE = [{"type": "Available", "status": "True"}]


@pytest.mark.parametrize(("workload", "ready"), [
    (_workload("Deployment", "d", conditions=AVAILABLE, updatedReplicas=1), True),
    (_workload("Deployment", "d", replicas=0, conditions=AVAILABLE), True),
    # not seen by its controller yet, rollout not done, not Available
    (_workload("Deployment", "d", observed=1, conditions=AVAILABLE, updatedReplicas=1), False),
    (_workload("Deployment", "d", replicas=2, conditions=AVAILABLE, updatedReplicas=1), False),
    (_workload("Deployment", "d", conditions=[{"type": "Available", "status": "False"}], updatedReplicas=1), False),
    (_workload("StatefulSet", "s", replicas=2, readyReplicas=2, currentRevision="r1", updateRevision="r1"), True),
    (_workload("StatefulSet", "s", replicas=2, readyReplicas=1, currentRevision="r1", updateRevision="r1"), False),
    (_workload("StatefulSet", "s", readyReplicas=1, currentRevision="r1", updateRevision="r2"), False),
])
def test_workloads_pending_per_kind(workload, ready):
    wanted = [{"kind": workload["kind"], "namespace": "kubeflow", "name": workload["metadata"]["name"]}]
    assert kf.workloads_pending([workload], wanted) == ([] if ready else [f"{workload['kind']} kubeflow/{workload['metadata']['name']}"])


def test_workloads_pending_names_missing_ones_and_does_not_mix_kinds():
    dep = _workload("Deployment", "same", conditions=AVAILABLE, updatedReplicas=1)
    wanted = [{"kind": "Deployment", "namespace": "kubeflow", "name": "same"},
              {"kind": "StatefulSet", "namespace": "kubeflow", "name": "same"},
              {"namespace": "istio-system", "name": "istiod"}]
    assert kf.workloads_pending([dep], wanted) == ["StatefulSet kubeflow/same", "Deployment istio-system/istiod"]


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
    # the fixture's webhook configurations are the opt-in component common/webhooks (nothing answers them on kwok)
    phases = kf.split_phases(_build("example", "common/webhooks"), dashboard_configmaps=DASHBOARD_CMS, menu_link=LINK)
    assert sorted(phases["crd_names"]) == ["clusterissuers.cert-manager.io", "poddefaults.kubeflow.org", "profiles.kubeflow.org",
                                           "virtualservices.networking.istio.io", "widgets.example.nga4m.io"]
    assert {d["kind"] for d in phases["cert_manager"]} == {"Deployment", "Service", "ValidatingWebhookConfiguration"}
    kinds = {d["kind"] for d in phases["rest"]}
    assert {"Widget", "ClusterIssuer", "ValidatingWebhookConfiguration", "ConfigMap"} <= kinds


# --------------------------------------------------------------------------- Dex static user
FIXTURE_DEFAULT_HASH = "$2b$10$F1xtureSaltF1xtureSalu.89AWNDZeCO4iuU13t8aXW3Q9WKzAky"  # the fixture's stand-in default
NEW_HASH = "$2b$12$abcdefghijklmnopqrstuuOeZ2hQ32AyBh8ZYFFLfYoUxWKOV2GcS"


def _build(*components) -> str:
    return "".join(
        subprocess.run(["kubectl", "kustomize", str(FIXTURE / c)], capture_output=True, text=True, check=True).stdout + "---\n"
        for c in components
    )


def _find(objects, kind, name):
    return [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]


def test_fixture_dex_user_is_replaced_and_its_secret_moves_out_of_the_logged_phases():
    phases = kf.split_phases(_build("example", "common/dex"))
    assert phases["dex"] == {"namespace": "auth", "users": 1, "error": ""}
    out = kf.set_dex_user(phases, "admin@example.org", NEW_HASH)
    # the Secret Dex reads DEX_USER_PASSWORD from carries the new hash, and only dex_objects holds it
    [secret] = out["dex_objects"]
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", "dex-passwords")
    assert base64.b64decode(secret["data"]["DEX_USER_PASSWORD"]).decode() == NEW_HASH
    assert "stringData" not in secret
    assert not _find(out["rest"], "Secret", "dex-passwords")
    assert FIXTURE_DEFAULT_HASH not in json.dumps(out)
    # the email is the new login; the Deployment restarts on a new user
    [cm] = _find(out["rest"], "ConfigMap", "dex")
    import yaml  # noqa: PLC0415

    users = yaml.safe_load(cm["data"]["config.yaml"])["staticPasswords"]
    assert [(u["email"], u["hashFromEnv"], u["username"]) for u in users] == [("admin@example.org", "DEX_USER_PASSWORD", "user")]
    [dep] = _find(out["rest"], "Deployment", "dex")
    checksum = dep["spec"]["template"]["metadata"]["annotations"][kf.DEX_CHECKSUM_ANNOTATION]
    # deterministic: the same user gives the same objects (idempotent re-applies); another hash another checksum
    assert kf.set_dex_user(phases, "admin@example.org", NEW_HASH) == out
    other = kf.set_dex_user(phases, "admin@example.org", NEW_HASH.replace("GcS", "GcT"))
    assert _find(other["rest"], "Deployment", "dex")[0]["spec"]["template"]["metadata"]["annotations"][kf.DEX_CHECKSUM_ANNOTATION] != checksum
    # the input phases are not modified
    assert _find(phases["rest"], "Secret", "dex-passwords")[0]["stringData"] == {"DEX_USER_PASSWORD": FIXTURE_DEFAULT_HASH}
    assert "annotations" not in _find(phases["rest"], "Deployment", "dex")[0]["spec"]["template"]["metadata"]


def _profile(name, owner, kind="User"):
    return obj("Profile", name, api_version="kubeflow.org/v1", spec={"owner": {"kind": kind, "name": owner}})


def test_profiles_of_the_build_user_follow_the_dex_login():
    phases = kf.split_phases(_build("example", "common/dex"))
    [built] = _find(phases["rest"], "Profile", "kubeflow-user-example-com")
    assert built["spec"]["owner"] == {"kind": "User", "name": "user@example.com"}
    phases["rest"] += [_profile("team-a", "someone@example.org"), _profile("group-b", "user@example.com", kind="Group")]
    out = kf.set_dex_user(phases, "admin@example.org", NEW_HASH)
    owners = {p["metadata"]["name"]: p["spec"]["owner"] for p in out["rest"] if p["kind"] == "Profile"}
    # the example user's Profile moves to the new login; other owners and a Group of the same name stay
    assert owners == {"kubeflow-user-example-com": {"kind": "User", "name": "admin@example.org"},
                      "team-a": {"kind": "User", "name": "someone@example.org"},
                      "group-b": {"kind": "Group", "name": "user@example.com"}}
    assert out["dex_profiles"] == ["kubeflow-user-example-com"]
    assert built["spec"]["owner"]["name"] == "user@example.com"  # input not modified
    # the build's own login keeps the Profile as built
    same = kf.set_dex_user(phases, "user@example.com", NEW_HASH)
    assert _find(same["rest"], "Profile", "kubeflow-user-example-com") == [built] and same["dex_profiles"] == ["kubeflow-user-example-com"]


def test_fixture_dex_inline_hash_is_replaced_in_the_configmap():
    phases = kf.split_phases(_build("common/dex-inline"))
    assert phases["dex"]["users"] == 1 and phases["dex"]["error"] == ""
    out = kf.set_dex_user(phases, "user@example.com", NEW_HASH)
    [cm] = out["dex_objects"]
    assert cm["kind"] == "ConfigMap" and FIXTURE_DEFAULT_HASH not in cm["data"]["config.yaml"] and NEW_HASH in cm["data"]["config.yaml"]
    assert not _find(out["rest"], "ConfigMap", "dex")
    assert _find(out["rest"], "Deployment", "dex")[0]["spec"]["template"]["metadata"]["annotations"]


def test_a_build_without_dex_is_left_alone():
    phases = kf.split_phases(_build("example"))
    assert phases["dex"] == {"namespace": None, "users": 0, "error": ""}
    out = kf.set_dex_user(phases, "user@example.com", NEW_HASH)
    assert out["dex_objects"] == [] and out["rest"] == phases["rest"]


def _dex_docs(users, secret=True, mount=True):
    import yaml  # noqa: PLC0415

    cfg = {"issuer": "http://dex", "staticPasswords": users}
    docs = [obj("ConfigMap", "dex", "auth", data={"config.yaml": yaml.safe_dump(cfg)})]
    pod = {"containers": [{"name": "dex", "env": [{"name": "DEX_USER_PASSWORD",
                                                   "valueFrom": {"secretKeyRef": {"name": "dex-passwords", "key": "DEX_USER_PASSWORD"}}}]}]}
    if mount:
        pod["volumes"] = [{"name": "config", "configMap": {"name": "dex"}}]
    docs.append(obj("Deployment", "dex", "auth", "apps/v1", spec={"template": {"spec": pod}}))
    if secret:
        docs.append(obj("Secret", "dex-passwords", "auth", stringData={"DEX_USER_PASSWORD": FIXTURE_DEFAULT_HASH}))
    return docs


@pytest.mark.parametrize(("docs", "needle"), [
    (_dex_docs([{"email": "a@example.com", "hashFromEnv": "DEX_USER_PASSWORD"}, {"email": "b@example.com", "hash": "x"}]),
     "2 Dex static user(s)"),
    (_dex_docs([{"email": "a@example.com", "hashFromEnv": "DEX_USER_PASSWORD"}], secret=False),
     "Secret auth/dex-passwords key DEX_USER_PASSWORD, which the build does not hold"),
    (_dex_docs([{"email": "a@example.com", "hashFromEnv": "DEX_USER_PASSWORD"}], mount=False), "no Deployment of the build mounts"),
    (_dex_docs([{"email": "a@example.com", "hashFromEnv": "OTHER"}]), "defines OTHER"),
    (_dex_docs([{"email": "a@example.com"}]), "neither 'hash' nor 'hashFromEnv'"),
])
def test_dex_static_passwords_that_cannot_be_traced_are_refused(docs, needle):
    phases = kf.split_phases(docs)
    assert needle in phases["dex"]["error"], phases["dex"]
    with pytest.raises(NGA4MError, match="cannot replace the Dex static password"):
        kf.set_dex_user(phases, "user@example.com", NEW_HASH)


@pytest.mark.parametrize(("email", "password_hash", "needle"), [
    ("not-an-email", NEW_HASH, "email"), ("user@example.com", "plaintext", "bcrypt hash")])
def test_set_dex_user_checks_its_inputs(email, password_hash, needle):
    with pytest.raises(NGA4MError, match=needle):
        kf.set_dex_user(kf.split_phases(_dex_docs([{"email": "a@example.com", "hash": "x"}])), email, password_hash)
