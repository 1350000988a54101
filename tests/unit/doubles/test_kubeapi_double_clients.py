"""Real clients against the Kubernetes API test double: the kubernetes Python client and kubectl."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import pytest

kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes client is in requirements-test.txt")
from kubernetes.dynamic import DynamicClient  # noqa: E402
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError  # noqa: E402

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: demo}
stringData: {password: hunter2}
"""


@pytest.fixture
def dyn(kubeapi, tmp_path, monkeypatch):
    """A DynamicClient for a freshly reset kpc cluster (discovery cache isolated in tmp_path)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    kubeapi["pc"].store.reset()
    api = kubernetes.config.new_client_from_config(kubeapi["pc"].kubeconfig)
    try:
        yield DynamicClient(api)
    finally:
        api.close()


def test_dynamic_client_create_get_list_patch_delete(dyn):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    created = cms.create(body={"metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"k": "v"}},
                         namespace="default")
    assert created.metadata.uid
    with pytest.raises(ConflictError):
        cms.create(body={"metadata": {"name": "a"}}, namespace="default")
    assert cms.get(name="a", namespace="default").data.k == "v"
    listed = cms.get(namespace="default", label_selector="app=x")
    assert listed.kind == "ConfigMapList" and [i.metadata.name for i in listed.items] == ["a"]
    patched = cms.patch(name="a", namespace="default", body={"data": {"k2": "v2"}})  # strategic merge
    assert patched.data.k2 == "v2"
    applied = cms.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}},
                                    name="a", namespace="default", field_manager="nga4m")
    again = cms.server_side_apply(body={"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}},
                                  name="a", namespace="default", field_manager="nga4m")
    assert again.metadata.resourceVersion == applied.metadata.resourceVersion
    cms.delete(name="a", namespace="default")
    with pytest.raises(NotFoundError):
        cms.get(name="a", namespace="default")


def test_dynamic_client_crd_and_watch(dyn):
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(body={
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.org"},
        "spec": {"group": "example.org", "scope": "Namespaced",
                 "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]}})
    widgets = dyn.resources.get(api_version="example.org/v1", kind="Widget")  # lazy discoverer refreshes
    widgets.create(body={"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"},
                         "spec": {"n": 1}}, namespace="default")
    rv = widgets.get(namespace="default").metadata.resourceVersion

    def later():
        time.sleep(0.3)
        widgets.patch(name="w", namespace="default", body={"spec": {"n": 2}},
                      content_type="application/merge-patch+json")

    t = threading.Thread(target=later)
    t.start()
    seen = []
    for event in widgets.watch(namespace="default", resource_version=rv, timeout=5):
        seen.append((event["type"], event["object"].spec.n))
        break
    t.join()
    assert seen == [("MODIFIED", 2)]


def _kubectl(kubeapi, tmp_path, *args, check=True, timeout=60):
    argv = [KUBECTL, "--kubeconfig", kubeapi["pc"].kubeconfig, "--cache-dir", str(tmp_path / "kcache"), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_kubectl_server_side_apply_get_wait_delete(kubeapi, tmp_path):
    kubeapi["pc"].store.reset()
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    out = _kubectl(kubeapi, tmp_path, "apply", "--server-side", "-f", str(manifest)).stdout
    assert "deployment.apps/web serverside-applied" in out
    rv = kubeapi["pc"].store.get_object("apps/v1", "Deployment", "web", "demo")["metadata"]["resourceVersion"]
    _kubectl(kubeapi, tmp_path, "apply", "--server-side", "-f", str(manifest))
    deploy = kubeapi["pc"].store.get_object("apps/v1", "Deployment", "web", "demo")
    assert deploy["metadata"]["resourceVersion"] == rv  # idempotent
    assert {e["manager"] for e in deploy["metadata"]["managedFields"]} == {"kubectl"}

    got = json.loads(_kubectl(kubeapi, tmp_path, "-n", "demo", "get", "deployment", "web", "-o", "json").stdout)
    assert got["spec"]["replicas"] == 2
    secret = json.loads(_kubectl(kubeapi, tmp_path, "-n", "demo", "get", "secret", "creds", "-o", "json").stdout)
    assert secret["data"] == {"password": "aHVudGVyMg=="}
    listing = _kubectl(kubeapi, tmp_path, "get", "deploy", "-A").stdout  # table output
    assert "web" in listing

    started = time.monotonic()
    out = _kubectl(kubeapi, tmp_path, "-n", "demo", "wait", "--for=condition=Available", "deployment/web",
                   "--timeout=20s").stdout
    assert "condition met" in out and time.monotonic() - started < 15

    # a wait that blocks until a later change (watch), then `kubectl scale` (scale subresource)
    proc = subprocess.Popen(  # noqa: S603
        [KUBECTL, "--kubeconfig", kubeapi["pc"].kubeconfig, "--cache-dir", str(tmp_path / "kcache"), "-n", "demo",
         "wait", "--for=jsonpath={.spec.replicas}=3", "deployment/web", "--timeout=20s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    _kubectl(kubeapi, tmp_path, "-n", "demo", "scale", "deployment/web", "--replicas=3")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

    out = _kubectl(kubeapi, tmp_path, "-n", "demo", "delete", "deployment", "web").stdout
    assert 'deployment.apps "web" deleted' in out
    assert kubeapi["pc"].store.get_object("apps/v1", "Deployment", "web", "demo") is None
    out = _kubectl(kubeapi, tmp_path, "delete", "namespace", "demo").stdout
    assert kubeapi["pc"].store.get_object("v1", "Secret", "creds", "demo") is None


def test_kubectl_create_token_and_api_resources(kubeapi, tmp_path):
    kubeapi["pc"].store.reset()
    _kubectl(kubeapi, tmp_path, "-n", "default", "create", "serviceaccount", "deployer")
    token = _kubectl(kubeapi, tmp_path, "-n", "default", "create", "token", "deployer").stdout.strip()
    assert token.count(".") == 2
    res = _kubectl(kubeapi, tmp_path, "api-resources").stdout
    assert "deployments" in res and "customresourcedefinitions" in res
    assert _kubectl(kubeapi, tmp_path, "auth", "can-i", "create", "pods").stdout.strip() == "yes"


CRD_YAML = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.org}
spec:
  group: example.org
  scope: Namespaced
  names: {kind: Widget, plural: widgets, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


def test_kubectl_crd_then_instance_and_job_wait(kubeapi, tmp_path):
    kubeapi["pc"].store.reset()
    _kubectl(kubeapi, tmp_path, "get", "ns")  # fill kubectl's discovery cache before the CRD exists
    (tmp_path / "crd.yaml").write_text(CRD_YAML)
    (tmp_path / "w.yaml").write_text("apiVersion: example.org/v1\nkind: Widget\n"
                                     "metadata: {name: w1, namespace: default}\nspec: {size: 3}\n")
    _kubectl(kubeapi, tmp_path, "apply", "--server-side", "-f", str(tmp_path / "crd.yaml"))
    _kubectl(kubeapi, tmp_path, "wait", "--for=condition=Established", "crd/widgets.example.org", "--timeout=10s")
    _kubectl(kubeapi, tmp_path, "apply", "--server-side", "-f", str(tmp_path / "w.yaml"))
    assert _kubectl(kubeapi, tmp_path, "get", "wd", "w1", "-o", "jsonpath={.spec.size}").stdout == "3"
    _kubectl(kubeapi, tmp_path, "create", "job", "j", "--image=busybox")
    assert "condition met" in _kubectl(kubeapi, tmp_path, "wait", "--for=condition=complete", "job/j",
                                       "--timeout=10s").stdout
    _kubectl(kubeapi, tmp_path, "delete", "crd", "widgets.example.org")
    assert not [o for o in kubeapi["pc"].store.all_objects() if o["kind"] == "Widget"]
