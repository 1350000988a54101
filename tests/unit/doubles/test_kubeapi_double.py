"""Behaviour of the Kubernetes API test double, checked over HTTP."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.doubles.kubeapi_double import (
    json_merge_patch,
    json_patch,
    parse_field_selector,
    parse_label_selector,
    strategic_merge_patch,
)
from tests.helpers.procs import ManagedProcess

REPO = Path(__file__).resolve().parents[3]
CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


def cm(name, data=None, labels=None, ns=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": "v"}}


def deployment(name="web", replicas=2, image="nginx:1.27", extra_env=None):
    env = [{"name": "A", "value": "1"}] + (extra_env or [])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image, "env": env,
                                         "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def crd(plural="widgets", kind="Widget", group="example.org", scope="Namespaced", versions=("v1",),
        status=True, short=("wd",)):
    vers = []
    for n, v in enumerate(versions):
        entry = {"name": v, "served": True, "storage": n == 0,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
        if status:
            entry["subresources"] = {"status": {}}
        vers.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": scope,
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "shortNames": list(short)},
                 "versions": vers},
    }


# ---------------------------------------------------------------- discovery


def test_version_and_health_endpoints(kpc):
    code, body = kpc.get("/version")
    assert code == 200 and body["major"] == "1" and body["gitVersion"].startswith("v1.")
    for path in ("/healthz", "/readyz", "/livez"):
        code, body = kpc.get(path)
        assert (code, body) == (200, "ok")


def test_core_discovery(kpc):
    code, body = kpc.get("/api")
    assert code == 200 and body["kind"] == "APIVersions" and body["versions"] == ["v1"]
    code, body = kpc.get("/api/v1")
    assert body["kind"] == "APIResourceList" and body["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in body["resources"]}
    for plural, kind in [("namespaces", "Namespace"), ("configmaps", "ConfigMap"), ("secrets", "Secret"),
                         ("serviceaccounts", "ServiceAccount"), ("services", "Service"), ("pods", "Pod"),
                         ("persistentvolumeclaims", "PersistentVolumeClaim"), ("endpoints", "Endpoints"),
                         ("events", "Event")]:
        assert by_name[plural]["kind"] == kind
        assert "watch" in by_name[plural]["verbs"]
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["configmaps"]["namespaced"] is True and by_name["configmaps"]["shortNames"] == ["cm"]
    assert by_name["serviceaccounts/token"]["kind"] == "TokenRequest"
    assert by_name["pods/status"]["verbs"] == ["get", "patch", "update"]


@pytest.mark.parametrize(
    "group,version,kinds",
    [
        ("apps", "v1", {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}),
        ("batch", "v1", {"Job", "CronJob"}),
        ("rbac.authorization.k8s.io", "v1", {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}),
        ("apiextensions.k8s.io", "v1", {"CustomResourceDefinition"}),
        ("admissionregistration.k8s.io", "v1", {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}),
        ("networking.k8s.io", "v1", {"Ingress", "NetworkPolicy"}),
        ("policy", "v1", {"PodDisruptionBudget"}),
        ("storage.k8s.io", "v1", {"StorageClass"}),
        ("apiregistration.k8s.io", "v1", {"APIService"}),
        ("coordination.k8s.io", "v1", {"Lease"}),
        ("authorization.k8s.io", "v1", {"SelfSubjectAccessReview"}),
    ],
)
def test_group_discovery(kpc, group, version, kinds):
    code, groups = kpc.get("/apis")
    assert code == 200 and groups["kind"] == "APIGroupList"
    assert group in {g["name"] for g in groups["groups"]}
    code, info = kpc.get(f"/apis/{group}")
    assert info["kind"] == "APIGroup" and info["preferredVersion"]["version"] == version
    code, rl = kpc.get(f"/apis/{group}/{version}")
    assert code == 200 and rl["groupVersion"] == f"{group}/{version}"
    assert kinds <= {r["kind"] for r in rl["resources"]}


def test_aggregated_discovery_accept_gets_plain_json(kpc):
    accept = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
    code, body, resp = kpc.call("GET", "/apis", headers={"Accept": accept})
    assert code == 200 and body["kind"] == "APIGroupList"
    assert resp.getheader("Content-Type") == "application/json"


def test_protobuf_accept_gets_json(kpc):
    code, body, resp = kpc.call("GET", CM, headers={"Accept": "application/vnd.kubernetes.protobuf, */*"})
    assert code == 200 and body["kind"] == "ConfigMapList"
    assert resp.getheader("Content-Type") == "application/json"


def test_openapi_v3_declares_field_validation_and_v2_is_absent(kpc):
    code, index = kpc.get("/openapi/v3")
    assert code == 200 and "apis/apps/v1" in index["paths"] and "api/v1" in index["paths"]
    code, doc = kpc.get(index["paths"]["apis/apps/v1"]["serverRelativeURL"])
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert kpc.get("/openapi/v2")[0] == 404


def test_crd_makes_kind_discoverable_and_established(kpc):
    code, created = kpc.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                             crd(versions=("v1", "v1beta1")))
    assert code == 201
    conds = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert conds == {"Established": "True", "NamesAccepted": "True"}
    assert created["status"]["acceptedNames"]["kind"] == "Widget"
    code, info = kpc.get("/apis/example.org")
    assert [v["version"] for v in info["versions"]] == ["v1", "v1beta1"]
    for version in ("v1", "v1beta1"):
        code, rl = kpc.get(f"/apis/example.org/{version}")
        res = {r["name"]: r for r in rl["resources"]}
        assert res["widgets"]["kind"] == "Widget" and res["widgets"]["namespaced"] is True
        assert res["widgets"]["singularName"] == "widget" and res["widgets"]["shortNames"] == ["wd"]
        assert "widgets/status" in res
    path = "/apis/example.org/v1beta1/namespaces/default/widgets"
    code, w = kpc.post(path, {"apiVersion": "example.org/v1beta1", "kind": "Widget", "metadata": {"name": "w1"},
                              "spec": {"size": 1}})
    assert code == 201 and w["metadata"]["generation"] == 1
    assert "status" not in w  # no emulated controller for arbitrary kinds
    code, got = kpc.get("/apis/example.org/v1/namespaces/default/widgets/w1")
    assert got["apiVersion"] == "example.org/v1" and got["spec"] == {"size": 1}


def test_cluster_scoped_crd_and_deletion_removes_kind_and_objects(kpc, kubeapi):
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    assert kpc.post(base, crd(plural="gadgets", kind="Gadget", scope="Cluster", short=()))[0] == 201
    code, rl = kpc.get("/apis/example.org/v1")
    assert {r["name"]: r["namespaced"] for r in rl["resources"]}["gadgets"] is False
    assert kpc.post("/apis/example.org/v1/gadgets", {"apiVersion": "example.org/v1", "kind": "Gadget",
                                                     "metadata": {"name": "g1"}})[0] == 201
    assert kpc.delete(f"{base}/gadgets.example.org")[0] == 200
    assert kpc.get("/apis/example.org/v1/gadgets")[0] == 404
    assert kpc.get("/apis/example.org")[0] == 404
    assert not [o for o in kubeapi["pc"].store.all_objects() if o["kind"] == "Gadget"]


def test_invalid_crd_is_rejected(kpc):
    bad = crd()
    bad["metadata"]["name"] = "wrong.example.org"
    code, body = kpc.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad)
    assert code == 422 and body["reason"] == "Invalid"


# ---------------------------------------------------------------- CRUD


def test_create_get_conflict_and_metadata(kpc):
    code, a = kpc.post(CM, cm("a"))
    assert code == 201
    meta = a["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and int(meta["resourceVersion"]) > 0
    assert meta["managedFields"][0]["operation"] == "Update"
    code, b = kpc.post(CM, cm("b"))
    assert int(b["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])  # one counter per cluster
    code, err = kpc.post(CM, cm("a"))
    assert code == 409 and err["reason"] == "AlreadyExists" and err["kind"] == "Status"
    code, got = kpc.get(f"{CM}/a")
    assert code == 200 and got["data"] == {"k": "v"} and got["kind"] == "ConfigMap"


def test_not_found_and_missing_namespace(kpc):
    code, err = kpc.get(f"{CM}/nope")
    assert code == 404 and err["reason"] == "NotFound" and err["kind"] == "Status"
    assert err["message"] == 'configmaps "nope" not found'
    code, err = kpc.get(f"{DEPLOY}/nope")
    assert err["message"] == 'deployments.apps "nope" not found'
    code, err = kpc.post("/api/v1/namespaces/ghost/configmaps", cm("a"))
    assert code == 404 and err["reason"] == "NotFound" and err["message"] == 'namespaces "ghost" not found'


def test_update_with_resource_version_conflict(kpc):
    _code, a = kpc.post(CM, cm("a"))
    changed = dict(a, data={"k": "v2"})
    code, upd = kpc.put(f"{CM}/a", changed)
    assert code == 200 and upd["data"] == {"k": "v2"}
    code, err = kpc.put(f"{CM}/a", dict(a, data={"k": "v3"}))  # stale resourceVersion
    assert code == 409 and err["reason"] == "Conflict"
    # identical update: no new resourceVersion
    code, same = kpc.put(f"{CM}/a", upd)
    assert same["metadata"]["resourceVersion"] == upd["metadata"]["resourceVersion"]


def test_generation_bumps_only_on_spec_change(kpc):
    _code, d = kpc.post(DEPLOY, deployment())
    assert d["metadata"]["generation"] == 1
    _code, d2 = kpc.patch(f"{DEPLOY}/web", {"metadata": {"labels": {"extra": "x"}}})
    assert d2["metadata"]["generation"] == 1
    assert int(d2["metadata"]["resourceVersion"]) > int(d["metadata"]["resourceVersion"])
    _code, d3 = kpc.patch(f"{DEPLOY}/web", {"status": {"replicas": 5}}, ctype="application/merge-patch+json")
    assert d3["metadata"]["generation"] == 1 and d3["status"]["replicas"] == 2  # main resource ignores status
    _code, d4 = kpc.patch(f"{DEPLOY}/web", {"spec": {"replicas": 3}})
    assert d4["metadata"]["generation"] == 2
    assert d4["status"]["observedGeneration"] == 2 and d4["status"]["readyReplicas"] == 3


def test_list_kind_selectors_and_all_namespaces(kpc):
    kpc.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    kpc.post(CM, cm("a", labels={"app": "x", "tier": "web"}))
    kpc.post(CM, cm("b", labels={"app": "y"}))
    kpc.post(CM, cm("c"))
    kpc.post("/api/v1/namespaces/other/configmaps", cm("d", labels={"app": "x"}))
    code, lst = kpc.get(CM)
    assert lst["kind"] == "ConfigMapList" and lst["apiVersion"] == "v1" and lst["metadata"]["resourceVersion"]
    assert [i["metadata"]["name"] for i in lst["items"]] == ["a", "b", "c"]
    _code, all_ns = kpc.get("/api/v1/configmaps")
    assert {i["metadata"]["name"] for i in all_ns["items"]} == {"a", "b", "c", "d"}

    def names(sel, path="/api/v1/configmaps", key="labelSelector"):
        from urllib.parse import quote

        code, body = kpc.get(f"{path}?{key}={quote(sel)}")
        assert code == 200, body
        return sorted(i["metadata"]["name"] for i in body["items"])

    assert names("app=x") == ["a", "d"]
    assert names("app==x") == ["a", "d"]
    assert names("app!=x") == ["b", "c"]
    assert names("app in (x,y)") == ["a", "b", "d"]
    assert names("app notin (x)") == ["b", "c"]
    assert names("tier") == ["a"]
    assert names("!app") == ["c"]
    assert names("app=x,tier=web") == ["a"]
    assert names("metadata.name=b", key="fieldSelector") == ["b"]
    assert names("metadata.namespace=other", key="fieldSelector") == ["d"]
    assert names("metadata.namespace!=other,metadata.name!=a", key="fieldSelector") == ["b", "c"]


def test_list_limit_and_continue(kpc):
    for n in range(5):
        kpc.post(CM, cm(f"p{n}"))
    _code, first = kpc.get(f"{CM}?limit=2")
    assert len(first["items"]) == 2 and first["metadata"]["remainingItemCount"] == 3
    _code, second = kpc.get(f"{CM}?limit=10&continue={first['metadata']['continue']}")
    assert [i["metadata"]["name"] for i in second["items"]] == ["p2", "p3", "p4"]


def test_selector_parsers():
    pred = parse_label_selector("a in (1, 2),b notin (3),!c,d,e!=5")
    assert pred({"a": "1", "d": "", "e": "4"}) is True
    assert pred({"a": "1", "d": "", "c": "x"}) is False
    assert parse_field_selector("status.phase=Running")({"status": {"phase": "Running"}}) is True


# ---------------------------------------------------------------- patches


def test_patch_helpers():
    assert json_merge_patch({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}}) == {"a": 1, "b": {"d": 3}}
    ops = [{"op": "add", "path": "/a/-", "value": 3}, {"op": "replace", "path": "/a/0", "value": 0}]
    assert json_patch({"a": [1, 2]}, ops) == {"a": [0, 2, 3]}
    merged = strategic_merge_patch(
        {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}], "args": ["x"]},
        {"containers": [{"name": "b", "image": "2"}, {"name": "c", "image": "3"}], "args": ["y"]},
    )
    assert merged == {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"},
                                     {"name": "c", "image": "3"}], "args": ["y"]}
    deleted = strategic_merge_patch({"env": [{"name": "A"}, {"name": "B"}]},
                                    {"env": [{"name": "A", "$patch": "delete"}]})
    assert deleted == {"env": [{"name": "B"}]}


def test_json_merge_and_strategic_patch_over_http(kpc):
    kpc.post(DEPLOY, deployment())
    code, d = kpc.patch(f"{DEPLOY}/web", [{"op": "replace", "path": "/spec/replicas", "value": 4}],
                        ctype="application/json-patch+json")
    assert code == 200 and d["spec"]["replicas"] == 4
    code, d = kpc.patch(f"{DEPLOY}/web", {"metadata": {"annotations": {"a": "b"}}},
                        ctype="application/merge-patch+json")
    assert d["metadata"]["annotations"] == {"a": "b"}
    smp = {"spec": {"template": {"spec": {
        "containers": [{"name": "main", "env": [{"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 8080}],
                        "volumeMounts": [{"mountPath": "/data", "name": "data"}]},
                       {"name": "sidecar", "image": "busybox"}],
        "initContainers": [{"name": "init", "image": "busybox"}],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "imagePullSecrets": [{"name": "regcred"}]}}}}
    code, d = kpc.patch(f"{DEPLOY}/web", smp, ctype="application/strategic-merge-patch+json")
    assert code == 200, d
    spec = d["spec"]["template"]["spec"]
    main = spec["containers"][0]
    assert [c["name"] for c in spec["containers"]] == ["main", "sidecar"]
    assert main["image"] == "nginx:1.27"  # kept: keyed merge
    assert [e["name"] for e in main["env"]] == ["A", "B"]
    assert [p["containerPort"] for p in main["ports"]] == [80, 8080]
    assert main["volumeMounts"] == [{"mountPath": "/data", "name": "data"}]
    assert spec["initContainers"][0]["name"] == "init" and spec["imagePullSecrets"] == [{"name": "regcred"}]
    code, err = kpc.patch(f"{DEPLOY}/web", [{"op": "test", "path": "/spec/replicas", "value": 99}],
                          ctype="application/json-patch+json")
    assert code == 422


def test_strategic_merge_is_unsupported_for_custom_resources(kpc):
    kpc.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd())
    path = "/apis/example.org/v1/namespaces/default/widgets"
    kpc.post(path, {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}})
    code, err = kpc.patch(f"{path}/w", {"spec": {"a": 1}}, ctype="application/strategic-merge-patch+json")
    assert code == 415 and err["reason"] == "UnsupportedMediaType"
    code, ok = kpc.patch(f"{path}/w", {"spec": {"a": 1}}, ctype="application/merge-patch+json")
    assert code == 200 and ok["spec"] == {"a": 1} and ok["metadata"]["generation"] == 2


def test_status_subresource(kpc):
    kpc.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd())
    path = "/apis/example.org/v1/namespaces/default/widgets"
    _code, w = kpc.post(path, {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"},
                               "spec": {"a": 1}, "status": {"ignored": True}})
    assert "status" not in w  # status dropped on create (status subresource)
    code, w2 = kpc.patch(f"{path}/w/status", {"status": {"phase": "Ready"}, "spec": {"a": 2}})
    assert code == 200 and w2["status"] == {"phase": "Ready"} and w2["spec"] == {"a": 1}
    assert w2["metadata"]["generation"] == 1
    w2["status"]["phase"] = "Done"
    code, w3 = kpc.put(f"{path}/w/status", w2)
    assert code == 200 and w3["status"] == {"phase": "Done"}
    assert kpc.get(f"{path}/w/status")[1]["status"] == {"phase": "Done"}
    # a spec write keeps the status set through the subresource
    _code, w4 = kpc.patch(f"{path}/w", {"spec": {"a": 3}})
    assert w4["status"] == {"phase": "Done"} and w4["metadata"]["generation"] == 2
    # built-in kinds: tests may make a workload look unready through /status
    kpc.post(DEPLOY, deployment())
    code, d = kpc.patch(f"{DEPLOY}/web/status", {"status": {"readyReplicas": 0, "availableReplicas": 0}})
    assert code == 200 and d["status"]["availableReplicas"] == 0


# ---------------------------------------------------------------- server-side apply


def test_server_side_apply_create_idempotent_and_field_removal(kpc):
    path = f"{DEPLOY}/web"
    code, first = kpc.apply(path, deployment(extra_env=[{"name": "B", "value": "2"}]), manager="nga4m")
    assert code == 201, first
    rv, gen = first["metadata"]["resourceVersion"], first["metadata"]["generation"]
    mf = {e["manager"]: e for e in first["metadata"]["managedFields"]}
    assert mf["nga4m"]["operation"] == "Apply" and "f:spec" in mf["nga4m"]["fieldsV1"]
    code, again = kpc.apply(path, deployment(extra_env=[{"name": "B", "value": "2"}]), manager="nga4m")
    assert code == 200 and again == first  # identical re-apply: identical object, same resourceVersion
    assert again["metadata"]["resourceVersion"] == rv and again["metadata"]["generation"] == gen
    # stop sending env B and the label: both removed
    body = deployment()
    body["metadata"].pop("labels")
    code, third = kpc.apply(path, body, manager="nga4m")
    env = third["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["A"] and "labels" not in third["metadata"]
    assert third["metadata"]["generation"] == gen + 1


def test_server_side_apply_conflicts_and_force(kpc):
    path = f"{DEPLOY}/web"
    kpc.apply(path, deployment(replicas=2), manager="alice")
    code, err = kpc.apply(path, deployment(replicas=5), manager="bob")
    assert code == 409 and err["reason"] == "Conflict" and ".spec.replicas" in err["message"]
    assert err["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    code, same = kpc.apply(path, deployment(replicas=2), manager="bob")  # same value: shared, no conflict
    assert code == 200
    code, forced = kpc.apply(path, deployment(replicas=5), manager="bob", force=True)
    assert code == 200 and forced["spec"]["replicas"] == 5
    # alice stops sending replicas: bob still owns it, so it stays
    body = deployment()
    del body["spec"]["replicas"]
    code, kept = kpc.apply(path, body, manager="alice")
    assert kept["spec"]["replicas"] == 5


def test_server_side_apply_conflicts_with_update_manager(kpc):
    kpc.post(f"{CM}?fieldManager=kubectl-create", cm("a", data={"k": "v"}))
    code, err = kpc.apply(f"{CM}/a", cm("a", data={"k": "other"}), manager="nga4m")
    assert code == 409
    code, ok = kpc.apply(f"{CM}/a", cm("a", data={"k": "other"}), manager="nga4m", force=True)
    assert code == 200 and ok["data"] == {"k": "other"}


def test_server_side_apply_yaml_body(kpc):
    yaml_body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n"
    code, out = kpc.apply(f"{CM}/y", yaml_body, manager="m")
    assert code == 201 and out["data"] == {"k": "v"}


# ---------------------------------------------------------------- dry run


def test_dry_run_writes_nothing(kpc, kubeapi):
    before = kubeapi["pc"].store.rv
    code, out = kpc.post(f"{CM}?dryRun=All", cm("dry"))
    assert code == 201 and out["metadata"]["name"] == "dry"
    assert kpc.get(f"{CM}/dry")[0] == 404
    code, out = kpc.apply(f"{CM}/dry", cm("dry"), manager="m", dry_run=True)
    assert code == 200 and out["data"] == {"k": "v"}
    assert kpc.get(f"{CM}/dry")[0] == 404
    kpc.post(CM, cm("real"))
    rv = kubeapi["pc"].store.rv
    kpc.patch(f"{CM}/real?dryRun=All", {"data": {"k": "changed"}})
    got = kpc.put(f"{CM}/real?dryRun=All", cm("real", data={"x": "y"}))[1]
    assert got["data"] == {"x": "y"}
    kpc.delete(f"{CM}/real?dryRun=All")
    assert kpc.get(f"{CM}/real")[1]["data"] == {"k": "v"}
    assert kubeapi["pc"].store.rv == rv and rv == before + 1


# ---------------------------------------------------------------- secrets, tokens, reviews


def test_secret_string_data_folded_into_data(kpc):
    path = "/api/v1/namespaces/default/secrets"
    code, s = kpc.post(path, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                              "stringData": {"password": "hunter2"}, "data": {"user": base64.b64encode(b"u").decode()}})
    assert code == 201 and "stringData" not in s and s["type"] == "Opaque"
    assert base64.b64decode(s["data"]["password"]) == b"hunter2" and base64.b64decode(s["data"]["user"]) == b"u"
    code, s2 = kpc.apply(f"{path}/s2", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2"},
                                        "stringData": {"token": "abc"}}, manager="m")
    assert s2["data"] == {"token": base64.b64encode(b"abc").decode()} and "stringData" not in s2
    _code, again = kpc.apply(f"{path}/s2", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s2"},
                                            "stringData": {"token": "abc"}}, manager="m")
    assert again["metadata"]["resourceVersion"] == s2["metadata"]["resourceVersion"]


def test_token_request_and_access_review(kpc):
    sa_path = "/api/v1/namespaces/default/serviceaccounts"
    assert kpc.post(f"{sa_path}/missing/token", {"spec": {}})[0] == 404
    kpc.post(sa_path, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer"}})
    code, tr = kpc.post(f"{sa_path}/deployer/token", {"apiVersion": "authentication.k8s.io/v1",
                                                      "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
    assert code == 201 and tr["kind"] == "TokenRequest" and tr["status"]["expirationTimestamp"]
    payload = tr["status"]["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "system:serviceaccount:default:deployer"
    code, review = kpc.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                            {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                             "spec": {"resourceAttributes": {"verb": "create", "resource": "pods"}}})
    assert code == 201 and review["status"]["allowed"] is True


# ---------------------------------------------------------------- readiness


def test_workloads_report_ready(kpc):
    ns = "/apis/apps/v1/namespaces/default"
    _code, d = kpc.post(f"{ns}/deployments", deployment())
    st = d["status"]
    assert st["replicas"] == st["readyReplicas"] == st["availableReplicas"] == st["updatedReplicas"] == 2
    assert st["observedGeneration"] == d["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {"Available": "True", "Progressing": "True"}

    tmpl = deployment()["spec"]
    _code, s = kpc.post(f"{ns}/statefulsets", {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                               "metadata": {"name": "db"}, "spec": {**tmpl, "serviceName": "db"}})
    st = s["status"]
    assert st["readyReplicas"] == st["currentReplicas"] == st["updatedReplicas"] == 2
    assert st["currentRevision"] == st["updateRevision"] and st["observedGeneration"] == 1
    assert s["spec"]["updateStrategy"]["type"] == "RollingUpdate"

    tmpl.pop("replicas")
    _code, ds = kpc.post(f"{ns}/daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                                              "spec": tmpl})
    st = ds["status"]
    assert st["desiredNumberScheduled"] == st["numberReady"] == st["updatedNumberScheduled"] == \
        st["numberAvailable"] == 1 and st["observedGeneration"] == 1

    _code, job = kpc.post("/apis/batch/v1/namespaces/default/jobs", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}})
    assert job["status"]["succeeded"] == 1
    assert {c["type"]: c["status"] for c in job["status"]["conditions"]}["Complete"] == "True"

    pod_body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}
    _code, pod = kpc.post("/api/v1/namespaces/default/pods", pod_body)
    assert pod["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    assert all(c["ready"] for c in pod["status"]["containerStatuses"])

    _code, pvc = kpc.post("/api/v1/namespaces/default/persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert pvc["status"]["phase"] == "Bound" and pvc["status"]["capacity"] == {"storage": "1Gi"}

    _code, svc = kpc.post("/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert svc["spec"]["clusterIP"].startswith("10.96.") and svc["spec"]["ports"][0]["targetPort"] == 80
    _code, svc2 = kpc.patch("/api/v1/namespaces/default/services/web", {"metadata": {"labels": {"a": "b"}}})
    assert svc2["spec"]["clusterIP"] == svc["spec"]["clusterIP"]

    _code, nsobj = kpc.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n1"}})
    assert nsobj["status"]["phase"] == "Active"
    assert nsobj["metadata"]["labels"]["kubernetes.io/metadata.name"] == "n1"


def test_inference_service_emulated_controller(kpc):
    kpc.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
             crd(plural="inferenceservices", kind="InferenceService", group="serving.kserve.io",
                 versions=("v1beta1",), short=("isvc",)))
    path = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
    code, isvc = kpc.apply(f"{path}/iris", {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                                            "metadata": {"name": "iris"},
                                            "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"}}}}},
                           manager="nga4m")
    assert code == 201
    assert isvc["status"]["url"] == "http://iris.default.example"
    assert {c["type"]: c["status"] for c in isvc["status"]["conditions"]}["Ready"] == "True"
    _code, again = kpc.apply(f"{path}/iris", {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                                              "metadata": {"name": "iris"},
                                              "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"}}}}},
                             manager="nga4m")
    assert again["metadata"]["resourceVersion"] == isvc["metadata"]["resourceVersion"]


# ---------------------------------------------------------------- delete


def test_delete_namespace_removes_its_objects(kpc, kubeapi):
    kpc.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    kpc.post("/api/v1/namespaces/gone/configmaps", cm("a"))
    code, out = kpc.delete("/api/v1/namespaces/gone")
    assert code == 200 and out["kind"] == "Namespace"
    assert kpc.get("/api/v1/namespaces/gone")[0] == 404
    assert not [o for o in kubeapi["pc"].store.all_objects() if o["metadata"].get("namespace") == "gone"]


def test_delete_propagation_finalizers_and_collection(kpc):
    _code, owner = kpc.post(CM, cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    child = cm("child")
    child["metadata"]["ownerReferences"] = [ref]
    kpc.post(CM, child)
    orphan = cm("orphan")
    orphan["metadata"]["ownerReferences"] = [ref]
    kpc.post(CM, orphan)
    # Orphan keeps dependents (and strips the reference)
    kpc.delete(f"{CM}/owner", {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"})
    assert kpc.get(f"{CM}/child")[0] == 200
    assert "ownerReferences" not in kpc.get(f"{CM}/orphan")[1]["metadata"]
    # Background (default) deletes dependents
    _code, owner2 = kpc.post(CM, cm("owner2"))
    dep = cm("dep")
    dep["metadata"]["ownerReferences"] = [{**ref, "name": "owner2", "uid": owner2["metadata"]["uid"]}]
    kpc.post(CM, dep)
    kpc.delete(f"{CM}/owner2")
    assert kpc.get(f"{CM}/dep")[0] == 404
    # finalizers hold the object until they are removed
    fin = cm("fin")
    fin["metadata"]["finalizers"] = ["example.org/hold"]
    kpc.post(CM, fin)
    code, held = kpc.delete(f"{CM}/fin")
    assert code == 200 and held["metadata"]["deletionTimestamp"]
    assert kpc.get(f"{CM}/fin")[0] == 200
    kpc.patch(f"{CM}/fin", {"metadata": {"finalizers": None}})
    assert kpc.get(f"{CM}/fin")[0] == 404
    # deletecollection with a label selector
    kpc.post(CM, cm("l1", labels={"del": "yes"}))
    kpc.post(CM, cm("l2", labels={"del": "yes"}))
    code, out = kpc.delete(f"{CM}?labelSelector=del%3Dyes")
    assert code == 200 and len(out["items"]) == 2
    assert kpc.get(f"{CM}?labelSelector=del%3Dyes")[1]["items"] == []


# ---------------------------------------------------------------- watch


def _read_events(kubeapi, path, count, timeout=10):
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(kubeapi["pc"].server)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", path, headers={"Accept": "application/json"})
    resp = conn.getresponse()
    events = []
    while len(events) < count:
        line = resp.readline()
        if not line:
            break
        if line.strip():
            events.append(json.loads(line))
    conn.close()
    return events


def test_watch_streams_events(kpc, kubeapi):
    _code, a = kpc.post(CM, cm("w1"))
    rv = a["metadata"]["resourceVersion"]

    def writer():
        time.sleep(0.3)
        pc2 = type(kpc)(kubeapi["pc"].server)
        pc2.post(CM, cm("other"))
        pc2.patch(f"{CM}/w1", {"data": {"k": "v2"}})
        pc2.delete(f"{CM}/w1")
        pc2.close()

    t = threading.Thread(target=writer)
    t.start()
    events = _read_events(kubeapi, f"{CM}?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3Dw1"
                          f"&timeoutSeconds=5", 2)
    t.join()
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["data"] == {"k": "v2"}
    # no resourceVersion: current objects first as ADDED, then the stream ends at timeoutSeconds
    started = time.monotonic()
    events = _read_events(kubeapi, f"{CM}?watch=true&timeoutSeconds=1", 100)
    assert [e["type"] for e in events] == ["ADDED"] and events[0]["object"]["metadata"]["name"] == "other"
    assert time.monotonic() - started < 5


def test_watch_too_old_resource_version_is_expired(kpc, kubeapi):
    store = kubeapi["pc"].store
    for n in range(store.events.maxlen + 5):
        kpc.post(CM, cm(f"e{n}")) if n < 3 else kpc.patch(f"{CM}/e0", {"data": {"n": str(n)}})
    events = _read_events(kubeapi, f"{CM}?watch=1&resourceVersion=1&timeoutSeconds=2", 1)
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


# ---------------------------------------------------------------- debug endpoints and table


def test_debug_objects_and_reset(kpc, kubeapi):
    kpc.post(CM, cm("dbg"))
    code, dump = kpc.get("/_double/objects?kind=ConfigMap")
    assert code == 200 and dump["cluster"] == "pc" and [o["metadata"]["name"] for o in dump["objects"]] == ["dbg"]
    code, out = kpc.call("POST", "/_double/reset")[:2]
    assert code == 200 and out["reset"] is True
    assert kpc.get(f"{CM}/dbg")[0] == 404
    assert kpc.get("/api/v1/namespaces/default")[0] == 200  # seed objects are back
    code, stats = kpc.get("/_double/stats")
    assert stats["requests"] > 0
    # other clusters are independent
    assert kubeapi["sc1"].store.get_object("v1", "ConfigMap", "dbg", "default") is None


def test_table_output_for_kubectl_get(kpc):
    kpc.post(CM, cm("t"))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, table, _resp = kpc.call("GET", CM, headers={"Accept": accept})
    assert code == 200 and table["kind"] == "Table" and table["rows"][0]["cells"][0] == "t"


def test_no_unbounded_state_per_request(kpc, kubeapi):
    store = kubeapi["pc"].store
    for _n in range(300):
        kpc.get(f"{CM}")
    assert len(store.events) <= store.events.maxlen
    assert not hasattr(store, "requests")  # only a counter is kept


# ---------------------------------------------------------------- CLI


def test_cli_writes_state_and_stops_cleanly_on_sigterm(tmp_path):
    state = tmp_path / "state"
    proc = ManagedProcess([sys.executable, REPO / "tests/doubles/kubeapi_double.py", "--state-dir", state,
                           "--cluster", "pc", "--cluster", "sc1", "--cluster", "sc2"], log_path=tmp_path / "log")
    try:
        deadline = time.monotonic() + 20
        while not (state / "clusters.json").exists():
            assert proc.alive(), proc.log_text()
            assert time.monotonic() < deadline, proc.log_text()
            time.sleep(0.05)
        info = json.loads((state / "clusters.json").read_text())
        assert set(info) == {"pc", "sc1", "sc2"}
        assert len({c["port"] for c in info.values()}) == 3
        for name, c in info.items():
            assert c["server"] == f"http://127.0.0.1:{c['port']}"
            assert c["kubeconfig"] == str(state / f"{name}.kubeconfig") and os.path.isabs(c["kubeconfig"])
            text = Path(c["kubeconfig"]).read_text()
            assert c["server"] in text and "token:" in text
            with socket.create_connection(("127.0.0.1", c["port"]), timeout=5):
                pass
        assert int((state / "kubeapi.pid").read_text()) == proc.pid
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=10) == 0
        assert not (state / "kubeapi.pid").exists()
    finally:
        proc.stop()


def test_stale_client_discovery_caches_are_removed(tmp_path, monkeypatch):
    import hashlib
    import tempfile

    from tests.doubles.kubeapi_double import forget_client_caches

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "kube"))
    server = "http://127.0.0.1:45678"
    py_cache = tmp_path / f"osrcp-{hashlib.md5(server.encode()).hexdigest()}.json"  # noqa: S324
    py_cache.write_text("{}")
    kubectl_cache = tmp_path / "kube" / "discovery" / "127.0.0.1_45678"
    kubectl_cache.mkdir(parents=True)
    forget_client_caches(server)
    assert not py_cache.exists() and not kubectl_cache.exists()
