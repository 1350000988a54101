"""Integration tests of the nga4m.platform.kubeflow role on a real control plane.

Each test gets a fresh cluster of the session bed (real kube-apiserver, controller manager,
scheduler, kwok nodes: the fixture's Deployments become Available, nothing runs in their
pods). The role builds ``tests/fixtures/kubeflow_manifests`` (our own fixture kustomization:
CRDs with typed structural schemas, their custom resources, core Deployments, the dashboard
ConfigMaps) with ``kubectl kustomize`` and applies it in phases with server-side apply.

Two tests reproduce, with real mechanisms, what a first install meets on a real cluster:

* a CRD that is not Established at once: a CRD left on the cluster (``gizmos``) claims the
  short name ``wdg`` that the fixture's Widget CRD asks for, so the API server's naming
  controller refuses the Widget CRD's names (``ShortNamesConflict``) and it stays
  un-Established; the test deletes the stale CRD only after the role polled twice (the API
  server's own request counter for CRD LISTs), and the Widget CRD becomes Established;
* an admission webhook that is not ready: a real HTTPS admission webhook server of ours on
  loopback (AdmissionReview v1, TLS with a CA made here, the API server calls its ``url``)
  registered as cert-manager's ``webhook.cert-manager.io`` for cert-manager.io objects,
  rejecting its first two requests, as cert-manager's webhook fails until its CA is injected.

The role itself is not changed for the tests: they prove that its phase order and bounded
retries absorb both in one run, and that a webhook that never answers (its URL a loopback port
nothing listens on: connection refused) ends in a clear failure instead of an endless loop.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import shutil
import socket
import ssl
import threading
import time
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.integration.platform_bed import FIXTURES, PlatformBed, failure_text

PLAYBOOK = "kubeflow_role.yml"
MANIFESTS = FIXTURES / "kubeflow_manifests"
COMPONENTS = ["example", "apps/dashboard-26x"]
TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"
# What the check-mode tests compare before and after (kinds the fixture build holds).
SNAPSHOT_KINDS = [
    ("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("apps/v1", "Deployment"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
]


@pytest.fixture()
def cluster(tmp_path):
    """A fresh real cluster ``pc`` (its own API server, controllers and kwok nodes)."""
    bed = PlatformBed(tmp_path, clusters=("pc",))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A cluster only check-mode runs touch (each test asserts it stays as it was)."""
    bed = PlatformBed(tmp_path_factory.mktemp("kubeflow-fresh"), clusters=("pc",))
    yield bed
    bed.stop()


def converge(bed: PlatformBed, check: bool = False, **overrides):
    extra = {"kubeconfig": bed.kubeconfig("pc"), "kubeflow_components": COMPONENTS, **overrides}
    return bed.run(PLAYBOOK, "localhost,", extra_vars=extra, check=check, diff=check)


def ran(run, task: str) -> list:
    """Non-skipped host results of the role task named ``task`` (the callback prefixes the role name)."""
    out = []
    for play in run.data.get("plays", []):
        for entry in play.get("tasks", []):
            name = entry.get("task", {}).get("name", "")
            if name == task or name.endswith(" : " + task):
                out.extend(r for r in entry.get("hosts", {}).values() if not r.get("skipped"))
    return out


def changed_tasks(run) -> list:
    return [(t["task"]["name"], h) for p in run.data["plays"] for t in p["tasks"] for h in t["hosts"].values() if h.get("changed")]


def snapshot(bed: PlatformBed) -> set:
    """(kind, namespace, name) of every object of SNAPSHOT_KINDS on the cluster."""
    return {(kind, o["metadata"].get("namespace"), o["metadata"]["name"])
            for api_version, kind in SNAPSHOT_KINDS for o in bed.list("pc", api_version, kind)}


def first_pass_errors(run) -> list:
    return [err for r in ran(run, "Apply the phase objects, first pass")
            for err in [x.get("error", {}).get("msg", "") for x in (r.get("result") or {}).get("results", [])] if err]


def available(dep: dict | None) -> bool:
    return bool(dep) and any(c["type"] == "Available" and c["status"] == "True"
                             for c in (dep.get("status") or {}).get("conditions") or [])


# ---------------------------------------------------------------------------
# check mode, convergence, idempotence
# ---------------------------------------------------------------------------
def test_check_mode_on_a_fresh_cluster_creates_nothing(fresh):
    before = snapshot(fresh)
    run = converge(fresh, check=True)
    assert run.rc == 0, failure_text(run)
    assert snapshot(fresh) == before
    assert not any(ns == "kubeflow" for _kind, _ns, ns in before)
    # the dry run reported what it would create
    assert run.changed_total() > 0


@pytest.fixture(scope="module")
def converged(tmp_path_factory):
    """A cluster the role converged twice (COMPONENTS): (bed, first run, second run)."""
    bed = PlatformBed(tmp_path_factory.mktemp("kubeflow-converged"), clusters=("pc",))
    try:
        yield bed, converge(bed), converge(bed)
    finally:
        bed.stop()


def test_converges_then_is_idempotent_with_poddefault_and_link_once(converged):
    cluster, first, second = converged
    assert first.rc == 0, failure_text(first)
    assert first.changed_total() > 0
    assert first_pass_errors(first) == []  # phase order: every CRD Established, every namespace there, first time
    assert second.rc == 0, failure_text(second)
    assert second.changed_total() == 0, changed_tasks(second)
    # every fixture object is there, server-side applied by our field manager
    widgets = cluster.list("pc", "example.nga4m.io/v1", "Widget")
    assert sorted(w["metadata"]["name"] for w in widgets) == ["demo-widget", "user-widget"]
    assert {w["metadata"]["name"]: w["spec"] for w in widgets}["demo-widget"] == {"size": 3, "colour": "teal"}
    assert cluster.get("pc", "cert-manager.io/v1", "ClusterIssuer", "fixture-self-signing-issuer")["spec"] == {"selfSigned": {}}
    managers = {(m["manager"], m["operation"]) for m in widgets[0]["metadata"].get("managedFields", [])}
    assert ("nga4m", "Apply") in managers
    # the core Deployments became Available (kwok runs their pods as Ready), the role waited for them
    for ns, name in (("cert-manager", "cert-manager-webhook"), ("istio-system", "istiod"), ("kubeflow", "ml-pipeline"),
                     ("kubeflow", "centraldashboard"), ("kubeflow", "profiles-deployment"), ("kubeflow", "dashboard")):
        assert available(cluster.get("pc", "apps/v1", "Deployment", name, ns)), (ns, name)
    assert cluster.get("pc", "apps/v1", "StatefulSet", "metadata-db", "kubeflow")["status"].get("readyReplicas") == 1
    # the default build holds no admission webhook that nothing could answer
    assert cluster.list("pc", "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") == []
    # PodDefault spec, as the API server stored it through the CRD's typed schema
    pds = cluster.list("pc", "kubeflow.org/v1alpha1", "PodDefault", "kubeflow-user-example-com")
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
        cm = cluster.get("pc", "v1", "ConfigMap", name, "kubeflow")
        assert cm, name
        links = json.loads(cm["data"]["links"])
        mlflow = [e for e in links["menuLinks"] if e.get("link") == "/mlflow/"]
        assert mlflow == [{"type": "item", "link": "/mlflow/", "text": "MLflow", "icon": "check-all"}], name
        assert any(e.get("link") == "/jupyter/" for e in links["menuLinks"])  # merged, not replaced


def test_poddefault_schema_refuses_a_misspelled_field(converged):
    """The PodDefault CRD is typed: a misspelled field fails the server-side apply instead of vanishing."""
    from kubernetes import dynamic  # noqa: PLC0415
    from kubernetes.dynamic.exceptions import DynamicApiError  # noqa: PLC0415

    cluster, first, _second = converged
    assert first.rc == 0, failure_text(first)
    live = cluster.get("pc", "kubeflow.org/v1alpha1", "PodDefault", "access-ml-pipeline", "kubeflow-user-example-com")
    body = {"apiVersion": "kubeflow.org/v1alpha1", "kind": "PodDefault",
            "metadata": {"name": "access-ml-pipeline", "namespace": "kubeflow-user-example-com"},
            "spec": json.loads(json.dumps(live["spec"]))}
    source = body["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    source["expirationSecond"] = source.pop("expirationSeconds")
    dyn = dynamic.DynamicClient(cluster.api("pc"))
    res = dyn.resources.get(api_version="kubeflow.org/v1alpha1", kind="PodDefault")
    with pytest.raises(DynamicApiError) as refused:
        dyn.server_side_apply(res, body=body, field_manager="nga4m", force_conflicts=True)
    assert "expirationSecond" in str(refused.value.body) and "field not declared in schema" in str(refused.value.body)
    after = cluster.get("pc", "kubeflow.org/v1alpha1", "PodDefault", "access-ml-pipeline", "kubeflow-user-example-com")
    assert after["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]


def test_link_merged_into_a_live_configmap_that_the_build_does_not_own(cluster):
    """The dashboard step merges into an existing ConfigMap (26.x layout) by merge patch, once."""
    from kubernetes import dynamic  # noqa: PLC0415

    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "dashboard-config", "namespace": "kubeflow"},
          "data": {"links": json.dumps({"menuLinks": [{"type": "item", "link": "/jupyter/", "text": "Notebooks"}]}),
                   "settings": "{}"}}
    first = converge(cluster, kubeflow_components=["example"])
    assert first.rc == 0, failure_text(first)
    dynamic.DynamicClient(cluster.api("pc")).resources.get(api_version="v1", kind="ConfigMap").create(body=cm, namespace="kubeflow")
    for attempt in (1, 2):
        run = converge(cluster, kubeflow_components=["example"])
        assert run.rc == 0, f"run {attempt}: {failure_text(run)}"
    live = cluster.get("pc", "v1", "ConfigMap", "dashboard-config", "kubeflow")
    links = json.loads(live["data"]["links"])
    assert [e["link"] for e in links["menuLinks"]] == ["/jupyter/", "/mlflow/"]
    assert live["data"]["settings"] == "{}"
    assert run.changed_total() == 0, failure_text(run)


# ---------------------------------------------------------------------------
# a first install on a real cluster: a CRD not yet Established, a webhook not yet ready
# ---------------------------------------------------------------------------
def _tls_material(workdir: Path) -> tuple[Path, Path, bytes]:
    """A CA and a serving certificate for 127.0.0.1 (cert file, key file, CA PEM for the caBundle)."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nga4m-test-webhook-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    workdir.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = workdir / "webhook.crt", workdir / "webhook.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM)


class AdmissionWebhook:
    """Our HTTPS admission webhook on 127.0.0.1: answers AdmissionReview v1, denying the first ``deny_first`` requests.

    ``reviews`` records (operation, kind, name, allowed) of every request the API server sent.
    """

    def __init__(self, workdir: Path, deny_first: int):
        self.deny_first = deny_first
        self.reviews: list[tuple] = []
        self.lock = threading.Lock()
        cert_file, key_file, self.ca_pem = _tls_material(workdir)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                request = review["request"]
                with hook.lock:
                    allowed = len(hook.reviews) >= hook.deny_first
                    hook.reviews.append((request["operation"], request["kind"]["kind"],
                                         request.get("name"), allowed))
                response = {"uid": request["uid"], "allowed": allowed}
                if not allowed:
                    response["status"] = {"code": 503, "reason": "ServiceUnavailable",
                                          "message": "fixture cert-manager webhook: CA bundle not injected yet"}
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": response}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert_file), str(key_file))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/validate"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def cert_manager_webhook_component(root: Path, url: str, ca_pem: bytes, name: str = "test/cert-manager-webhook") -> str:
    """Write a kustomization under ``root`` registering ``url`` as cert-manager's webhook; return its component path."""
    vwc = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "cert-manager-webhook", "labels": {"app.kubernetes.io/instance": "cert-manager"}},
        "webhooks": [{
            "name": "webhook.cert-manager.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 5,
            "rules": [{"apiGroups": ["cert-manager.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                       "resources": ["*/*"]}],
            "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
        }],
    }
    path = root / name
    path.mkdir(parents=True)
    (path / "validatingwebhookconfiguration.yaml").write_text(yaml.safe_dump(vwc, sort_keys=False))
    (path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["validatingwebhookconfiguration.yaml"]}))
    return name


def manifests_copy(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, root)
    return root


STALE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gizmos.example.nga4m.io"},
    "spec": {"group": "example.nga4m.io", "scope": "Namespaced",
             "names": {"kind": "Gizmo", "listKind": "GizmoList", "plural": "gizmos", "singular": "gizmo", "shortNames": ["wdg"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object"}}}]},
}
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def metric(api, metric_name: str, **labels) -> float:
    """Sum of the API server's own counter ``metric_name`` (its /metrics) over the series carrying ``labels``."""
    total = 0.0
    for line in api.request("GET", "/metrics").splitlines():
        if line.startswith(metric_name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _crd_lists(api) -> float:
    """How many LIST requests on CustomResourceDefinitions the API server has served."""
    return metric(api, "apiserver_request_total", resource="customresourcedefinitions", verb="LIST")


def _condition(crd: dict, kind: str) -> dict:
    return next((c for c in (crd.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


class StaleCrdRemover(threading.Thread):
    """Deletes the stale Gizmo CRD once the Widget CRD is refused its names and the role has polled twice since."""

    def __init__(self, api, polls: int = 2, timeout: float = 300):
        super().__init__(daemon=True)
        self.api, self.polls, self.timeout = api, polls, timeout
        self.seen_reason = ""
        self.lists_at_refusal = self.lists_at_removal = 0.0
        self.error = ""

    def run(self):
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                try:
                    crd = self.api.request("GET", f"{CRD_PATH}/widgets.example.nga4m.io")
                except urllib.error.HTTPError:
                    crd = {}
                if _condition(crd, "NamesAccepted").get("status") == "False":
                    self.seen_reason = _condition(crd, "NamesAccepted").get("reason", "")
                    assert _condition(crd, "Established").get("status") != "True"
                    break
                time.sleep(0.1)
            self.lists_at_refusal = _crd_lists(self.api)
            while time.monotonic() < deadline and _crd_lists(self.api) < self.lists_at_refusal + self.polls:
                time.sleep(0.25)
            self.lists_at_removal = _crd_lists(self.api)
            self.api.request("DELETE", f"{CRD_PATH}/{STALE_CRD['metadata']['name']}")
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = repr(exc)


def _wait_established(api, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _condition(api.request("GET", f"{CRD_PATH}/{name}"), "Established").get("status") == "True":
            return
        time.sleep(0.1)
    raise AssertionError(f"CRD {name} not Established after {timeout}s")


def test_first_attempts_fail_until_ready_and_the_role_converges_in_one_run(cluster, tmp_path):
    api = cluster.cluster("pc").api()
    # A stale CRD of the same group holds the short name the Widget CRD asks for.
    api.request("POST", CRD_PATH, STALE_CRD)
    _wait_established(api, STALE_CRD["metadata"]["name"])
    root = manifests_copy(tmp_path)
    webhook = AdmissionWebhook(tmp_path / "webhook", deny_first=2)
    remover = StaleCrdRemover(api)
    try:
        component = cert_manager_webhook_component(root, webhook.url, webhook.ca_pem)
        remover.start()
        run = converge(cluster, kubeflow_manifests_path=str(root), kubeflow_components=[*COMPONENTS, component],
                       kubeflow_apply_retries=5)
        remover.join(timeout=10)
    finally:
        webhook.stop()
    assert run.rc == 0, failure_text(run)
    assert remover.error == "", remover.error
    # phase 1 waited for Established (it polled while the Widget CRD's names were refused) instead of racing ahead ...
    assert remover.seen_reason == "ShortNamesConflict"
    assert remover.lists_at_removal >= remover.lists_at_refusal + 2
    waits = ran(run, "Poll the CRDs until every one is Established")
    assert len(waits) == 1 and waits[0]["attempts"] >= 3, waits
    # ... so no custom resource was sent before its CRD was served: the one first-pass error is the webhook's
    errors = first_pass_errors(run)
    assert len(errors) == 1 and "webhook.cert-manager.io" in errors[0] and "denied the request" in errors[0], errors
    assert "CA bundle not injected yet" in errors[0]
    # the webhook denied the first two requests (first pass, first retry), the bounded re-apply converged
    assert webhook.reviews == [("CREATE", "ClusterIssuer", "fixture-self-signing-issuer", False),
                               ("CREATE", "ClusterIssuer", "fixture-self-signing-issuer", False),
                               ("CREATE", "ClusterIssuer", "fixture-self-signing-issuer", True)]
    retry = ran(run, "Re-apply the objects that failed on the first pass")
    assert len(retry) == 1 and retry[0]["attempts"] == 2 and retry[0]["changed"], retry
    assert cluster.get("pc", "cert-manager.io/v1", "ClusterIssuer", "fixture-self-signing-issuer") is not None
    assert len(cluster.list("pc", "example.nga4m.io/v1", "Widget")) == 2
    assert cluster.get("pc", "kubeflow.org/v1alpha1", "PodDefault", "access-ml-pipeline", "kubeflow-user-example-com")
    assert cluster.get("pc", "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "cert-manager-webhook")


def test_a_webhook_that_never_answers_fails_bounded_with_a_clear_message(cluster, tmp_path):
    root = manifests_copy(tmp_path)
    *_files, ca_pem = _tls_material(tmp_path / "tls")
    # A bound socket that never listens: every connection to it is refused at once.
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    try:
        component = cert_manager_webhook_component(root, f"https://127.0.0.1:{closed.getsockname()[1]}/validate", ca_pem)
        started = time.monotonic()
        run = converge(cluster, kubeflow_manifests_path=str(root), kubeflow_components=[*COMPONENTS, component],
                       kubeflow_apply_retries=2)
        elapsed = time.monotonic() - started
    finally:
        closed.close()
    assert run.rc != 0, failure_text(run)
    assert elapsed < 300, elapsed
    stop = ran(run, "Stop with what still fails and what to check")
    assert len(stop) == 1, failure_text(run)
    msg = stop[0]["msg"]
    assert "phase 'rest'" in msg and "after 2 re-apply attempts" in msg, msg
    assert "ClusterIssuer fixture-self-signing-issuer" in msg and "cert-manager-webhook" in msg, msg
    assert "webhook.cert-manager.io" in msg, msg
    assert any("connection refused" in e for e in first_pass_errors(run)), first_pass_errors(run)
    # the API server called the webhook for the first pass + 1 try + 2 retries, then the role stopped
    calls = metric(cluster.cluster("pc").api(), "apiserver_admission_webhook_rejection_count",
                   name="webhook.cert-manager.io", error_type="calling_webhook_error")
    assert calls == 4, calls
    retry = ran(run, "Re-apply the objects that failed on the first pass")
    assert len(retry) == 1 and retry[0]["failed"], retry
    assert cluster.get("pc", "cert-manager.io/v1", "ClusterIssuer", "fixture-self-signing-issuer") is None
    # nothing after the failed phase ran
    assert cluster.list("pc", "kubeflow.org/v1alpha1", "PodDefault") == []


def test_waits_for_every_workload_of_the_build_whatever_its_name(cluster, tmp_path):
    """The role waits for the Deployments and StatefulSets it applied, read from the build (the 26.03.1 dashboard is
    `dashboard`): a StatefulSet whose pod no node accepts stops the run, bounded, naming it."""
    root = manifests_copy(tmp_path)
    never = root / "test" / "never-ready"
    never.mkdir(parents=True)
    sts = yaml.safe_load((MANIFESTS / "apps" / "metadata-store" / "statefulset.yaml").read_text())
    sts["metadata"]["name"] = sts["spec"]["serviceName"] = "unschedulable-db"
    sts["spec"]["template"]["spec"]["nodeSelector"] = {"nga4m.test/no-such-node": "true"}
    (never / "statefulset.yaml").write_text(yaml.safe_dump(sts, sort_keys=False))
    (never / "kustomization.yaml").write_text("resources:\n  - statefulset.yaml\n")
    started = time.monotonic()
    run = converge(cluster, kubeflow_manifests_path=str(root), kubeflow_components=[*COMPONENTS, "test/never-ready"],
                   kubeflow_wait_timeout=15)
    elapsed = time.monotonic() - started
    assert run.rc != 0, failure_text(run)
    assert elapsed < 240, elapsed
    [stop] = ran(run, "Stop with the workloads that are not ready")
    assert "StatefulSet kubeflow/unschedulable-db" in stop["msg"], stop["msg"]
    assert "dashboard" not in stop["msg"] and "metadata-db" not in stop["msg"], stop["msg"]
    # the others were waited for and became ready through the real controllers (kwok runs their pods)
    assert available(cluster.get("pc", "apps/v1", "Deployment", "dashboard", "kubeflow"))
    assert cluster.get("pc", "apps/v1", "StatefulSet", "metadata-db", "kubeflow")["status"].get("readyReplicas") == 1
    polled = {r["item"] for r in ran(run, "Poll each kind until every one of it is ready")[-1]["results"]}
    assert polled == {"Deployment", "StatefulSet"}


# ---------------------------------------------------------------------------
# the Dex static user: never the manifests' default password
# ---------------------------------------------------------------------------
DEX_COMPONENTS = COMPONENTS + ["common/dex"]
FIXTURE_DEFAULT_HASH = "$2b$10$F1xtureSaltF1xtureSalu.89AWNDZeCO4iuU13t8aXW3Q9WKzAky"  # tests/fixtures/.../common/dex


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


def _bcrypt_ok(password: str, hashed: str) -> bool:
    from ansible_collections.nga4m.platform.plugins.module_utils.passwords import bcrypt_hash  # noqa: PLC0415

    return bcrypt_hash(password, rounds=int(hashed[4:6]), salt=hashed[7:29]) == hashed


def dex_state(bed: PlatformBed) -> dict:
    stored = {k: _b64(v) for k, v in bed.get("pc", "v1", "Secret", "nga4m-dex-user", "auth")["data"].items()}
    cm = bed.get("pc", "v1", "ConfigMap", "dex", "auth")
    dep = bed.get("pc", "apps/v1", "Deployment", "dex", "auth")
    return {
        "stored": stored,
        "dex_hash": _b64(bed.get("pc", "v1", "Secret", "dex-passwords", "auth")["data"]["DEX_USER_PASSWORD"]),
        "emails": [u["email"] for u in yaml.safe_load(cm["data"]["config.yaml"])["staticPasswords"]],
        "checksum": (dep["spec"]["template"]["metadata"].get("annotations") or {}).get("nga4m.platform/dex-user-checksum"),
        "generation": dep["metadata"]["generation"],
        "profile_owner": bed.get("pc", "kubeflow.org/v1", "Profile", "kubeflow-user-example-com")["spec"]["owner"],
    }


def test_dex_user_is_generated_kept_stable_and_replaced_on_request(cluster):
    first = converge(cluster, kubeflow_components=DEX_COMPONENTS)
    assert first.rc == 0, failure_text(first)
    state = dex_state(cluster)
    password = state["stored"]["password"]
    # generated, stored, and only its bcrypt hash reached Dex: the fixture's default hash is gone
    assert len(password) == 24 and password.isalnum()
    assert state["stored"]["email"] == "user@example.com" and state["emails"] == ["user@example.com"]
    assert state["profile_owner"] == {"kind": "User", "name": "user@example.com"}
    assert state["dex_hash"] == state["stored"]["hash"] != FIXTURE_DEFAULT_HASH
    assert _bcrypt_ok(password, state["dex_hash"])
    assert state["checksum"]
    # re-run: the same password and hash, nothing changed (not even the Deployment's generation)
    second = converge(cluster, kubeflow_components=DEX_COMPONENTS)
    assert second.rc == 0, failure_text(second)
    assert second.changed_total() == 0, changed_tasks(second)
    assert dex_state(cluster) == state
    # a vaulted password and another email replace them; Dex restarts (new pod template checksum: a rollout)
    mine = "correct-horse-battery-staple"
    third = converge(cluster, kubeflow_components=DEX_COMPONENTS,
                     kubeflow_dex_user_password=mine, kubeflow_dex_user_email="admin@example.org")
    assert third.rc == 0, failure_text(third)
    new = dex_state(cluster)
    assert new["stored"]["password"] == mine and new["emails"] == ["admin@example.org"]
    # the example user's Profile follows the login (its namespace is not orphaned under the old owner)
    assert new["profile_owner"] == {"kind": "User", "name": "admin@example.org"}
    assert new["dex_hash"] == new["stored"]["hash"] != state["dex_hash"] and _bcrypt_ok(mine, new["dex_hash"])
    assert new["checksum"] != state["checksum"]
    assert new["generation"] > state["generation"]
    # no password nor hash in any output
    for run in (first, second, third):
        text = run.stdout + run.stderr
        assert password not in text and mine not in text
        assert state["dex_hash"] not in text and new["dex_hash"] not in text


def test_dex_check_mode_on_a_fresh_cluster_creates_nothing(fresh):
    before = snapshot(fresh)
    run = converge(fresh, check=True, kubeflow_components=DEX_COMPONENTS)
    assert run.rc == 0, failure_text(run)
    assert snapshot(fresh) == before
    assert fresh.get("pc", "v1", "Namespace", "auth") is None


def test_dex_left_as_built_when_not_managed(cluster):
    run = converge(cluster, kubeflow_components=DEX_COMPONENTS, kubeflow_dex_manage_static_password=False)
    assert run.rc == 0, failure_text(run)
    assert cluster.get("pc", "v1", "Secret", "nga4m-dex-user", "auth") is None
    assert _b64(cluster.get("pc", "v1", "Secret", "dex-passwords", "auth")["data"]["DEX_USER_PASSWORD"]) == FIXTURE_DEFAULT_HASH
