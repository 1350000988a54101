"""kubernetes.core (via ansible-playbook) against the Kubernetes API test double."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.playbook import run_playbook

PLAYBOOK = Path(__file__).parent / "playbooks" / "kubeapi_double_k8s.yml"


def test_kubernetes_core_against_the_double(kubeapi, tmp_path):
    kubeapi["pc"].store.reset()
    run = run_playbook(
        PLAYBOOK,
        env={
            "K8S_AUTH_KUBECONFIG": kubeapi["pc"].kubeconfig,
            # the kubernetes client caches discovery per server URL in the temp dir
            "TMPDIR": str(tmp_path),
        },
        timeout=600,
    )
    assert run.rc == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert run.result("Apply objects (server-side apply, wait)")["changed"] is True
    again = run.result("Apply objects again")
    assert again["changed"] is False, again
    assert run.result("Plain present (patch) once")["changed"] is True
    assert run.result("Plain present (patch) twice")["changed"] is False
    assert run.result("Create a CRD")["changed"] is True
    isvc = run.result("Create an instance of the CRD")
    assert isvc["changed"] is True and isvc["result"]["status"]["url"] == "http://iris.nga4m-test.example"
    assert run.result("Check mode creates nothing")["changed"] is True
    assert run.result("Remove the plain config map")["changed"] is True
    assert run.result("Remove the plain config map again")["changed"] is False
    assert run.result("Client-side apply once")["changed"] is True
    assert run.result("Client-side apply twice")["changed"] is False
    assert run.result("Delete a namespace and wait")["changed"] is True
    report = run.result("Report")["msg"]
    assert report == {"found": ["settings"], "dry": "0"} or report == {"found": ["settings"], "dry": 0}

    store = kubeapi["pc"].store
    deploy = store.get_object("apps/v1", "Deployment", "web", "nga4m-test")
    assert deploy["metadata"]["generation"] == 1
    assert [e["manager"] for e in deploy["metadata"]["managedFields"]] == ["nga4m"]
    assert store.get_object("v1", "ConfigMap", "dry", "nga4m-test") is None
    assert store.get_object("v1", "ConfigMap", "plain", "nga4m-test") is None
    assert store.get_object("v1", "Namespace", "nga4m-gone") is None
    assert store.get_object("serving.kserve.io/v1beta1", "InferenceService", "iris", "nga4m-test") is not None
