"""The Kubernetes API double's controller latency model (``rollout_seconds``).

With ``rollout_seconds`` > 0 a workload reports ready that long after a rollout
starts (a create or a generation change, whichever way it is written), a timer
writes the ready status (a MODIFIED event for watchers), and a write that does
not change the generation starts nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.doubles.kubeapi_double import start_clusters
from .conftest import Api

from .test_kubeapi_double import _read_events, deployment

ROLLOUT = 1.0
APPS = "/apis/apps/v1/namespaces/default"
JOBS = "/apis/batch/v1/namespaces/default/jobs"


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    handle = start_clusters(["pc"], tmp_path_factory.mktemp("kubeapi-rollout"), rollout_seconds=ROLLOUT)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def api(slow):
    client = Api(slow["pc"].server)
    try:
        yield client
    finally:
        client.close()
        slow["pc"].store.reset()


def wait_until(check, timeout=ROLLOUT * 5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout} s")


def _available(obj):
    return {c["type"]: c["status"] for c in obj["status"].get("conditions", [])}.get("Available")


def test_a_new_deployment_is_ready_only_after_its_rollout(api):
    started = time.monotonic()
    _code, created = api.post(f"{APPS}/deployments", deployment(replicas=2))
    st = created["status"]
    assert _available(created) == "False" and st["unavailableReplicas"] == 2 and "availableReplicas" not in st
    done = wait_until(lambda: (d := api.get(f"{APPS}/deployments/web")[1])["status"].get("availableReplicas") == 2 and d)
    assert time.monotonic() - started >= ROLLOUT * 0.9
    assert _available(done) == "True" and "unavailableReplicas" not in done["status"]
    assert int(done["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert done["status"]["observedGeneration"] == done["metadata"]["generation"] == 1


def test_an_unchanged_apply_starts_no_rollout_and_a_spec_change_does(api):
    body = deployment(name="api", replicas=1)
    api.apply(f"{APPS}/deployments/api", body)  # server-side apply creates it: a rollout
    wait_until(lambda: api.get(f"{APPS}/deployments/api")[1]["status"].get("availableReplicas") == 1)
    _code, ready = api.get(f"{APPS}/deployments/api")

    _code, again = api.apply(f"{APPS}/deployments/api", body)
    assert again["metadata"]["resourceVersion"] == ready["metadata"]["resourceVersion"]
    assert again["status"] == ready["status"]
    _code, relabelled = api.patch(f"{APPS}/deployments/api", {"metadata": {"labels": {"team": "ml"}}})
    assert relabelled["metadata"]["generation"] == 1 and relabelled["status"]["availableReplicas"] == 1

    _code, updated = api.apply(f"{APPS}/deployments/api", deployment(name="api", replicas=1, image="nginx:1.28"))
    st = updated["status"]
    # rolling update: the old pod still serves, the surge pod of the new ReplicaSet is not ready
    assert updated["metadata"]["generation"] == 2 and st["observedGeneration"] == 2
    assert _available(updated) == "True" and st["replicas"] == 2 and st["unavailableReplicas"] == 1
    done = wait_until(lambda: (d := api.get(f"{APPS}/deployments/api")[1])["status"].get("replicas") == 1 and d)
    assert "unavailableReplicas" not in done["status"] and done["status"]["updatedReplicas"] == 1


def test_dry_run_starts_no_rollout(api):
    _code, dry = api.apply(f"{APPS}/deployments/dry", deployment(name="dry", replicas=1), dry_run=True)
    assert dry["status"]["availableReplicas"] == 1  # what it would look like once rolled out
    assert api.get(f"{APPS}/deployments/dry")[0] == 404
    _code, real = api.post(f"{APPS}/deployments", deployment(name="dry", replicas=1))
    assert _available(real) == "False"


def test_statefulset_daemonset_and_job_wait_too(api):
    tmpl = deployment()["spec"]
    _code, sts = api.post(f"{APPS}/statefulsets", {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                   "metadata": {"name": "db"}, "spec": {**tmpl, "serviceName": "db"}})
    assert sts["status"]["readyReplicas"] == 0
    tmpl.pop("replicas")
    _code, ds = api.post(f"{APPS}/daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                                                "spec": tmpl})
    assert ds["status"]["numberReady"] == 0 and ds["status"]["numberUnavailable"] == 1
    _code, job = api.post(JOBS, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
                                 "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                                "containers": [{"name": "c", "image": "x"}]}}}})
    assert job["status"]["active"] == 1 and "conditions" not in job["status"]

    wait_until(lambda: api.get(f"{APPS}/statefulsets/db")[1]["status"]["readyReplicas"] == 2)
    wait_until(lambda: api.get(f"{APPS}/daemonsets/agent")[1]["status"]["numberReady"] == 1)
    done = wait_until(lambda: api.get(f"{JOBS}/once")[1]["status"].get("conditions"))
    assert {c["type"]: c["status"] for c in done}["Complete"] == "True"


def test_watchers_see_the_rollout_end(api, slow):
    _code, created = api.post(f"{APPS}/deployments", deployment(name="watched", replicas=1))
    rv = created["metadata"]["resourceVersion"]
    events = _read_events(slow, f"{APPS}/deployments?watch=1&resourceVersion={rv}"
                                f"&fieldSelector=metadata.name%3Dwatched&timeoutSeconds={int(ROLLOUT * 5)}", 1)
    assert [e["type"] for e in events] == ["MODIFIED"]
    assert events[0]["object"]["status"]["availableReplicas"] == 1


def test_kubectl_wait_blocks_for_the_rollout(slow, tmp_path):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is required (tools/bootstrap checks for it)"
    manifest = tmp_path / "d.json"
    manifest.write_text(json.dumps(deployment(name="kw", replicas=1)))
    env = {**os.environ, "KUBECONFIG": slow["pc"].kubeconfig}
    subprocess.run([kubectl, "apply", "--server-side", "-f", str(manifest)], check=True, env=env,  # noqa: S603
                   capture_output=True)
    started = time.monotonic()
    out = subprocess.run([kubectl, "wait", "--for=condition=Available", "deployment/kw", "-n", "default",  # noqa: S603
                          "--timeout=30s"], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started >= ROLLOUT * 0.5
    slow["pc"].store.reset()


def test_zero_latency_is_the_default(kpc):
    _code, created = kpc.post(f"{APPS}/deployments", deployment(name="instant", replicas=1))
    assert created["status"]["availableReplicas"] == 1 and _available(created) == "True"
