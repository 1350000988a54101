"""Integration tests of the nga4m.platform.kubeflow role against the Kubernetes API test double.

The role builds ``tests/fixtures/kubeflow_manifests`` (our own fixture kustomization:
CRDs, their custom resources, webhook configurations, core Deployments, the
dashboard ConfigMaps) with ``kubectl kustomize`` and applies it in phases.

Two fault-injection tests run the double in-process and wrap its request entry
point to behave like a real API server during a first install:

* a CRD is served and reports ``Established=True`` only ~3 s after it is created
  (before that its custom resources answer 404), and
* the cert-manager webhook rejects cert-manager.io objects (x509: certificate signed
  by unknown authority) for its first calls, as it does until cainjector has
  injected the CA bundle.

The role itself is not changed for the tests: they prove that its phase order
and bounded retries absorb both, in one run, and that a webhook that never comes
up ends in a clear failure instead of an endless loop.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.doubles import kubeapi_double as kd
from tests.helpers.playbook import REPO, run_playbook
from tests.helpers.procs import ManagedProcess, wait_file

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "kubeflow_role.yml"
COMPONENTS = ["example", "apps/dashboard-26x"]
TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"
SEED_KINDS = {"Namespace", "Node", "Service", "StorageClass"}


@pytest.fixture()
def cluster(tmp_path):
    """A fresh emulated primary cluster (the double's CLI as a subprocess)."""
    state = tmp_path / "kubeapi"
    proc = ManagedProcess(
        [Path(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else "python3",
         REPO / "tests/doubles/kubeapi_double.py", "--state-dir", state, "--cluster", "pc"],
        log_path=tmp_path / "kubeapi.log",
    )
    try:
        wait_file(state / "clusters.json", proc, timeout=30)
        info = json.loads((state / "clusters.json").read_text())["pc"]
        yield info
    finally:
        proc.stop()


def objects(server: str, kind: str | None = None, namespace: str | None = None) -> list:
    query = "&".join(f"{k}={v}" for k, v in (("kind", kind), ("namespace", namespace)) if v)
    with urllib.request.urlopen(f"{server}/_double/objects?{query}", timeout=10) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())["objects"]


def converge(kubeconfig: str, check: bool = False, **overrides):
    extra = {"kubeconfig": kubeconfig, "kubeflow_components": COMPONENTS, **overrides}
    return run_playbook(PLAYBOOK, extra_vars=extra, check=check, diff=check)


def explain(run) -> str:
    return f"rc={run.rc}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"


def ran(run, task: str) -> list:
    """Non-skipped host results of the role task named ``task`` (the callback prefixes the role name)."""
    out = []
    for play in run.data.get("plays", []):
        for entry in play.get("tasks", []):
            name = entry.get("task", {}).get("name", "")
            if name == task or name.endswith(" : " + task):
                out.extend(r for r in entry.get("hosts", {}).values() if not r.get("skipped"))
    return out


def test_check_mode_on_a_fresh_cluster_creates_nothing(cluster):
    before = objects(cluster["server"])
    run = converge(cluster["kubeconfig"], check=True)
    assert run.rc == 0, explain(run)
    after = objects(cluster["server"])
    assert {o["kind"] for o in after} <= SEED_KINDS
    assert len(after) == len(before), [o["metadata"]["name"] for o in after]
    # the dry run reported what it would create
    assert run.changed_total() > 0


def test_converges_then_is_idempotent_with_poddefault_and_link_once(cluster):
    first = converge(cluster["kubeconfig"])
    assert first.rc == 0, explain(first)
    assert first.changed_total() > 0
    second = converge(cluster["kubeconfig"])
    assert second.rc == 0, explain(second)
    assert second.changed_total() == 0, [
        (t["task"]["name"], h) for p in second.data["plays"] for t in p["tasks"]
        for h in t["hosts"].values() if h.get("changed")
    ]
    server = cluster["server"]
    # every fixture object is there, server-side applied by our field manager
    widgets = objects(server, "Widget")
    assert sorted(w["metadata"]["name"] for w in widgets) == ["demo-widget", "user-widget"]
    assert objects(server, "ClusterIssuer")
    managers = {m["manager"] for m in widgets[0]["metadata"].get("managedFields", [])}
    assert "nga4m" in managers
    # PodDefault spec
    pds = objects(server, "PodDefault", "kubeflow-user-example-com")
    assert [p["metadata"]["name"] for p in pds] == ["access-ml-pipeline"]
    spec = pds[0]["spec"]
    assert spec["selector"] == {"matchLabels": {"access-ml-pipeline": "true"}}
    token = spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"path": "token", "expirationSeconds": 7200, "audience": "pipelines.kubeflow.org"}
    assert spec["volumeMounts"][0]["mountPath"] == TOKEN_DIR
    assert spec["volumeMounts"][0]["name"] == spec["volumes"][0]["name"]
    assert {"name": "KF_PIPELINES_SA_TOKEN_PATH", "value": f"{TOKEN_DIR}/token"} in spec["env"]
    assert spec["desc"]
    # the MLflow link exactly once, in both the older and the 26.x ConfigMap, after two runs
    for name in ("centraldashboard-config", "dashboard-config"):
        cm = [c for c in objects(server, "ConfigMap", "kubeflow") if c["metadata"]["name"] == name]
        assert cm, name
        links = json.loads(cm[0]["data"]["links"])
        mlflow = [e for e in links["menuLinks"] if e.get("link") == "/mlflow/"]
        assert mlflow == [{"type": "item", "link": "/mlflow/", "text": "MLflow", "icon": "check-all"}], name
        assert any(e.get("link") == "/jupyter/" for e in links["menuLinks"])  # merged, not replaced


def test_link_merged_into_a_live_configmap_that_the_build_does_not_own(cluster):
    """The dashboard step merges into an existing ConfigMap (26.x layout) by merge patch, once."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "dashboard-config", "namespace": "kubeflow"},
          "data": {"links": json.dumps({"menuLinks": [{"type": "item", "link": "/jupyter/", "text": "Notebooks"}]}),
                   "settings": "{}"}}
    first = converge(cluster["kubeconfig"], kubeflow_components=["example"])
    assert first.rc == 0, explain(first)
    req = urllib.request.Request(  # noqa: S310 - loopback
        f"{cluster['server']}/api/v1/namespaces/kubeflow/configmaps", data=json.dumps(cm).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - loopback
        pass
    for attempt in (1, 2):
        run = converge(cluster["kubeconfig"], kubeflow_components=["example"])
        assert run.rc == 0, f"run {attempt}: {explain(run)}"
    live = [c for c in objects(cluster["server"], "ConfigMap", "kubeflow") if c["metadata"]["name"] == "dashboard-config"][0]
    links = json.loads(live["data"]["links"])
    assert [e["link"] for e in links["menuLinks"]] == ["/jupyter/", "/mlflow/"]
    assert live["data"]["settings"] == "{}"
    assert run.changed_total() == 0, explain(run)


# ---------------------------------------------------------------------------
# fault injection: an API server that is slow to establish CRDs and whose
# cert-manager webhook is not ready at first
# ---------------------------------------------------------------------------


class SlowFirstInstall:
    """Wraps ClusterStore.handle of the in-process double (test-only fault injection).

    A new CRD reports ``Established=False`` to its first ``establish_reads`` reads and its
    custom resources answer 404 until then (deterministic, unlike a timer on a loaded machine);
    the cert-manager webhook rejects the first ``webhook_failures`` cert-manager.io writes once
    its ValidatingWebhookConfiguration exists.
    """

    def __init__(self, store, establish_reads: int = 2, webhook_failures: int = 2):
        self.store = store
        self.inner = store.handle
        self.establish_reads = establish_reads
        self.webhook_failures = webhook_failures
        self.pending: dict = {}  # CRD name -> [group, plural, reads left]
        self.cr_rejections = 0
        self.webhook_rejections = 0
        self.lock = threading.Lock()
        store.handle = self.handle

    def handle(self, req):
        parts = [p for p in req.path.split("/") if p]
        writes = req.method in ("POST", "PUT", "PATCH") and not req.dry_run
        with self.lock:
            if len(parts) >= 4 and parts[0] == "apis":
                group, rest = parts[1], parts[3:]
                if rest and rest[0] == "namespaces" and len(rest) >= 3:
                    rest = rest[2:]
                plural = rest[0] if rest else None
                if any(g == group and p == plural and left > 0 for g, p, left in self.pending.values()):
                    self.cr_rejections += 1
                    raise kd.ApiError(404, "NotFound", "the server could not find the requested resource")
                if group == "cert-manager.io" and writes and self.webhook_failures > 0 and self._webhook_exists():
                    self.webhook_failures -= 1
                    self.webhook_rejections += 1
                    raise kd.ApiError(
                        500, "InternalError",
                        'Internal error occurred: failed calling webhook "webhook.cert-manager.io": failed to call '
                        'webhook: Post "https://cert-manager-webhook.cert-manager.svc:443/validate?timeout=30s": '
                        "tls: failed to verify certificate: x509: certificate signed by unknown authority",
                    )
        resp = self.inner(req)
        if parts[:4] == ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions"]:
            body = getattr(resp, "body", None)
            with self.lock:
                if writes and isinstance(body, dict) and body.get("kind") == "CustomResourceDefinition":
                    name = body["metadata"]["name"]
                    self.pending.setdefault(name, [body["spec"]["group"], body["spec"]["names"]["plural"], self.establish_reads])
                elif req.method == "GET" and isinstance(body, dict) and any(v[2] > 0 for v in self.pending.values()):
                    body = copy.deepcopy(body)
                    for crd in body.get("items", [body]):
                        entry = self.pending.get(crd.get("metadata", {}).get("name"))
                        if entry and entry[2] > 0:
                            entry[2] -= 1
                            for cond in crd.get("status", {}).get("conditions", []):
                                if cond.get("type") == "Established":
                                    cond["status"] = "False"
                                    cond["reason"] = "Installing"
                    resp = kd.Response(resp.code, body, resp.content_type)
        return resp

    def _webhook_exists(self) -> bool:
        return any(o.get("kind") == "ValidatingWebhookConfiguration" and o["metadata"]["name"] == "cert-manager-webhook"
                   for o in self.store.all_objects())


@pytest.fixture()
def slow_cluster(tmp_path):
    handle = kd.start_clusters(["pc"], tmp_path / "kubeapi")
    try:
        faults = SlowFirstInstall(handle["pc"].store)
        yield handle["pc"], faults
    finally:
        handle.stop()


def test_first_attempts_fail_until_ready_and_the_role_converges_in_one_run(slow_cluster):
    pc, faults = slow_cluster
    run = converge(pc.kubeconfig, kubeflow_apply_retries=5)
    assert run.rc == 0, explain(run)
    # phase 1 waited for Established (more than one poll) instead of racing ahead ...
    waits = ran(run, "Poll the CRDs until every one is Established")
    assert len(waits) == 1 and waits[0]["attempts"] == 3, waits
    # ... so no custom resource was ever sent while its CRD was not yet served
    assert faults.cr_rejections == 0
    # the first attempt at the webhook-validated custom resource failed, and the bounded re-apply converged
    assert faults.webhook_rejections == 2
    first_pass_errors = [
        err for r in ran(run, "Apply the phase objects, first pass")
        for err in [x.get("error", {}).get("msg", "") for x in (r.get("result") or {}).get("results", [])]
        if "webhook.cert-manager.io" in err
    ]
    assert len(first_pass_errors) == 1, first_pass_errors
    retry = ran(run, "Re-apply the objects that failed on the first pass")
    assert len(retry) == 1 and retry[0]["attempts"] == 2 and retry[0]["changed"], retry
    kinds = {o["kind"] for o in pc.store.all_objects()}
    assert {"ClusterIssuer", "Widget", "PodDefault", "ValidatingWebhookConfiguration"} <= kinds


def test_a_webhook_that_never_answers_fails_bounded_with_a_clear_message(slow_cluster):
    pc, faults = slow_cluster
    faults.webhook_failures = 10**6
    started = time.monotonic()
    run = converge(pc.kubeconfig, kubeflow_apply_retries=2)
    assert run.rc != 0
    assert time.monotonic() - started < 600
    msg = ran(run, "Stop with what still fails and what to check")[0]["msg"]
    assert "phase 'rest'" in msg and "after 2 re-apply attempts" in msg, msg
    assert "ClusterIssuer fixture-self-signing-issuer" in msg and "cert-manager-webhook" in msg, msg
    assert faults.webhook_rejections == 1 + 3  # first pass + 1 try + 2 retries, then it stopped
    # nothing after the failed phase ran
    assert not any(o["kind"] == "PodDefault" for o in pc.store.all_objects())


# ---------------------------------------------------------------------------
# the Dex static user: never the manifests' default password
# ---------------------------------------------------------------------------
DEX_COMPONENTS = COMPONENTS + ["common/dex"]
FIXTURE_DEFAULT_HASH = "$2b$10$F1xtureSaltF1xtureSalu.89AWNDZeCO4iuU13t8aXW3Q9WKzAky"  # tests/fixtures/.../common/dex


def _b64(value: str) -> str:
    import base64  # noqa: PLC0415

    return base64.b64decode(value).decode()


def _bcrypt_ok(password: str, hashed: str) -> bool:
    from ansible_collections.nga4m.platform.plugins.module_utils.kubeflow import bcrypt_hash  # noqa: PLC0415

    return bcrypt_hash(password, rounds=int(hashed[4:6]), salt=hashed[7:29]) == hashed


def dex_state(server: str) -> dict:
    secrets = {s["metadata"]["name"]: s for s in objects(server, "Secret", "auth")}
    stored = {k: _b64(v) for k, v in secrets["nga4m-dex-user"]["data"].items()}
    [cm] = [c for c in objects(server, "ConfigMap", "auth") if c["metadata"]["name"] == "dex"]
    [dep] = [d for d in objects(server, "Deployment", "auth") if d["metadata"]["name"] == "dex"]
    import yaml  # noqa: PLC0415

    return {
        "stored": stored,
        "dex_hash": _b64(secrets["dex-passwords"]["data"]["DEX_USER_PASSWORD"]),
        "emails": [u["email"] for u in yaml.safe_load(cm["data"]["config.yaml"])["staticPasswords"]],
        "checksum": dep["spec"]["template"]["metadata"].get("annotations", {}).get("nga4m.platform/dex-user-checksum"),
    }


def test_dex_user_is_generated_kept_stable_and_replaced_on_request(cluster):
    server = cluster["server"]
    first = converge(cluster["kubeconfig"], kubeflow_components=DEX_COMPONENTS)
    assert first.rc == 0, explain(first)
    state = dex_state(server)
    password = state["stored"]["password"]
    # generated, stored, and only its bcrypt hash reached Dex: the fixture's default hash is gone
    assert len(password) == 24 and password.isalnum()
    assert state["stored"]["email"] == "user@example.com" and state["emails"] == ["user@example.com"]
    assert state["dex_hash"] == state["stored"]["hash"] != FIXTURE_DEFAULT_HASH
    assert _bcrypt_ok(password, state["dex_hash"])
    assert state["checksum"]
    # re-run: the same password and hash, nothing changed
    second = converge(cluster["kubeconfig"], kubeflow_components=DEX_COMPONENTS)
    assert second.rc == 0, explain(second)
    assert second.changed_total() == 0, explain(second)
    assert dex_state(server) == state
    # a vaulted password and another email replace them; Dex restarts (new pod template checksum)
    mine = "correct-horse-battery-staple"
    third = converge(cluster["kubeconfig"], kubeflow_components=DEX_COMPONENTS,
                     kubeflow_dex_user_password=mine, kubeflow_dex_user_email="admin@example.org")
    assert third.rc == 0, explain(third)
    new = dex_state(server)
    assert new["stored"]["password"] == mine and new["emails"] == ["admin@example.org"]
    assert new["dex_hash"] == new["stored"]["hash"] != state["dex_hash"] and _bcrypt_ok(mine, new["dex_hash"])
    assert new["checksum"] != state["checksum"]
    # no password nor hash in any output
    for run in (first, second, third):
        text = run.stdout + run.stderr
        assert password not in text and mine not in text
        assert state["dex_hash"] not in text and new["dex_hash"] not in text


def test_dex_check_mode_on_a_fresh_cluster_creates_nothing(cluster):
    before = objects(cluster["server"])
    run = converge(cluster["kubeconfig"], check=True, kubeflow_components=DEX_COMPONENTS)
    assert run.rc == 0, explain(run)
    assert len(objects(cluster["server"])) == len(before)


def test_dex_left_as_built_when_not_managed(cluster):
    run = converge(cluster["kubeconfig"], kubeflow_components=DEX_COMPONENTS, kubeflow_dex_manage_static_password=False)
    assert run.rc == 0, explain(run)
    secrets = {s["metadata"]["name"]: s for s in objects(cluster["server"], "Secret", "auth")}
    assert "nga4m-dex-user" not in secrets
    assert _b64(secrets["dex-passwords"]["data"]["DEX_USER_PASSWORD"]) == FIXTURE_DEFAULT_HASH
