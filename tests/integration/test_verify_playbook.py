"""playbooks/verify.yml against real clusters, real Prometheus federation and a v2 endpoint.

Real: the clusters pc1, sc1, sc2 (control planes of the session bed with kwok nodes: the
Deployment, StatefulSet and ReplicaSet controllers make the workloads available); KServe
converged by the kserve role on sc1 and sc2, whose REAL controller manager reconciles the
iris InferenceService on sc1 into a predictor and reports it Ready with its status.url; two
SC Prometheus servers (external label cluster=sc1/sc2) scraping a local exporter, and a PC
Prometheus federating both with the configuration rendered by
``nga4m.platform.prometheus_federation``; the Triton Inference Server (nvidia-pytriton's
tritonserver, tests/helpers/triton.py) serving an iris repository as the triton module
publishes it - nothing runs inside the kwok pods, so it runs here.
OURS: in the place of sc1's ingress controller, a proxy that forwards to Triton and records
the Host header the verification sent (an ingress routes on it). The workloads of pc1's
monitoring and mlflow namespaces and of the SCs' monitoring namespace are small
Deployments/StatefulSets made here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.helpers import onnx_models
from tests.helpers.playbook import REPO, run_playbook
from tests.helpers.prometheus import LocalExporter, PrometheusServer, scrape_config_for
from tests.helpers.triton import HostRecordingProxy, TritonServer
from tests.integration.platform_bed import PLAYBOOKS, PlatformBed, failure_text, wait_until

VERIFY = REPO / "playbooks" / "verify.yml"
SUMMARY = "Show the verification summary"
FAST = {"verify_federation_retries": 20, "verify_federation_delay": 1}
# sc1's inference entry point: an Ingress of class nginx per InferenceService (the real KServe controller creates
# it), for host <name>-<namespace>.<domain>; Triton behind our Host-recording proxy stands at the SC's ingress_url in
# place of the ingress controller. sc2 keeps the default (none).
SC1_ENTRY = {"kserve_inference_entry": "ingress", "kserve_ingress_class_name": "nginx", "kserve_ingress_domain": "sc1.example.test"}
URL = "http://iris-models.sc1.example.test"
INGRESS_CLASS = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
                 "spec": {"controller": "k8s.io/ingress-nginx"}}
BUCKET = "nga4m-verify"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """{sc1, sc2, pc}: real servers; the PC federates both SCs (config from prometheus_federation)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    exporter = LocalExporter({"models": ["iris"], "other": ["noise"]}).start()
    servers = {}
    try:
        for name in ("sc1", "sc2"):
            config = scrape_config_for(exporter, interval="1s", external_labels={"cluster": name})
            servers[name] = PrometheusServer(config, workdir, name=name).start()
        dest = workdir / "pc.yml"
        clusters = [{"name": name, "url": servers[name].url, "namespaces": ["models"]} for name in ("sc1", "sc2")]
        run = run_playbook(PLAYBOOKS / "federation_render.yml",
                           extra_vars={"federation_clusters": clusters, "federation_dest": str(dest), "federation_format": "prometheus_config"})
        assert run.rc == 0, failure_text(run)
        servers["pc"] = PrometheusServer(dest, workdir, name="pc").start()
        for name in ("sc1", "sc2"):
            servers["pc"].wait_for(f'nga4m_test_model_up{{cluster="{name}"}}', timeout=60)
        yield servers
    finally:
        for server in servers.values():
            server.stop()
        exporter.stop()


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    """The real tritonserver over an iris repository published as the triton module does, behind our Host-recording
    proxy (in the place of sc1's ingress controller)."""
    from ansible_collections.nga4m.platform.plugins.module_utils import triton  # noqa: PLC0415

    work = tmp_path_factory.mktemp("model")
    model = onnx_models.iris_classifier(work / "repo" / "iris" / "1" / "model.onnx")
    _config, text = triton.prepare_config("iris", triton.read_onnx(str(model)), {"max_batch_size": 8})
    (work / "repo" / "iris" / "config.pbtxt").write_text(text)
    with TritonServer(work, local_path=work / "repo", prefix="", poll_secs=0) as server:
        proxy = HostRecordingProxy(server.url)
        try:
            yield proxy
        finally:
            proxy.stop()


def _deployment(name, namespace):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "example.invalid/c:1"}]}}}}


def _namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _create(bed, cluster, docs):
    from kubernetes import dynamic  # noqa: PLC0415

    client = dynamic.DynamicClient(bed.api(cluster))
    for doc in docs:
        client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"]).create(body=doc, namespace=doc["metadata"].get("namespace"))


def _available(bed, cluster, kind, name, namespace):
    obj = bed.get(cluster, "apps/v1", kind, name, namespace) or {}
    status = obj.get("status", {})
    if kind == "StatefulSet":
        return status.get("readyReplicas", 0) >= 1
    return any(c["type"] == "Available" and c["status"] == "True" for c in status.get("conditions", []))


ISVC = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "iris", "namespace": "models"},
        "spec": {"predictor": {"serviceAccountName": "kserve-models",
                               "model": {"modelFormat": {"name": "triton"}, "runtime": "nga4m-tritonserver", "protocolVersion": "v2",
                                         "storageUri": f"s3://{BUCKET}/models/triton"}}}}


def _storage_vars(bed):
    """The shared object storage of the inventory: the session bed's MinIO, a bucket of this module."""
    s3 = bed.bed.s3
    return {"object_storage_endpoint": s3["endpoint"], "object_storage_secure": False, "object_storage_region": s3["region"],
            "object_storage_access_key": s3["access_key"], "object_storage_secret_key": s3["secret_key"],
            "object_storage_bucket": BUCKET}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("verify"), clusters=("pc1", "sc1", "sc2"))
    try:
        _create(bed, "pc1", [_namespace("monitoring"), _namespace("mlflow"), _deployment("prometheus-operator", "monitoring"),
                             _deployment("mlflow", "mlflow")])
        statefulset = _deployment("prometheus", "monitoring") | {"kind": "StatefulSet"}
        statefulset["spec"]["serviceName"] = "prometheus"
        _create(bed, "pc1", [statefulset])
        for sc in ("sc1", "sc2"):
            _create(bed, sc, [_namespace("monitoring"), _deployment("prometheus-operator", "monitoring")])
        # KServe on both SCs by its role (the bed's charts), then the object_storage role: the bucket and each
        # SC's least-privilege deployer kubeconfig, which verify.yml checks.
        _create(bed, "sc1", [INGRESS_CLASS])
        inv = bed.inventory(name="inventory-roles.yml", all_vars=_storage_vars(bed), hostvars={"sc1": SC1_ENTRY})
        for playbook in ("kserve_role.yml", "object_storage_role.yml"):
            run = bed.run(playbook, inv)
            assert run.rc == 0, failure_text(run)
        _create(bed, "sc1", [ISVC])
        wait_until("InferenceService iris Ready on sc1", lambda: [
            c for c in (bed.get("sc1", ISVC["apiVersion"], ISVC["kind"], "iris", "models") or {}).get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"])
        for cluster, kind, name, namespace in [("pc1", "Deployment", "prometheus-operator", "monitoring"),
                                               ("pc1", "StatefulSet", "prometheus", "monitoring"), ("pc1", "Deployment", "mlflow", "mlflow"),
                                               ("sc1", "Deployment", "prometheus-operator", "monitoring"),
                                               ("sc2", "Deployment", "prometheus-operator", "monitoring")]:
            wait_until(f"{cluster} {kind}/{name} available", lambda c=cluster, k=kind, n=name, ns=namespace: _available(bed, c, k, n, ns))
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="module")
def inventory(bed, prometheus, model_server):
    hostvars = {"pc1": {"prometheus_url": prometheus["pc"].url},
                "sc1": {**SC1_ENTRY, "ingress_url": model_server.url}, "sc2": {"verify_model_url": model_server.url}}
    return bed.inventory(hostvars=hostvars, all_vars=_storage_vars(bed))


def _verify(bed, inventory, extra=None):
    return run_playbook(VERIFY, inventory=inventory, extra_vars={**FAST, **(extra or {})}, env=bed.env())


def _rows(run):
    """The summary table as {(cluster, check): 'RESULT detail'}."""
    lines = run.result(SUMMARY, "localhost")["msg"]
    rows = {}
    for line in lines[2:-1]:
        cluster, check, result = (part.strip() for part in line.split(" | ", 2))
        rows[(cluster, check)] = " ".join(result.split(None, 1))  # 'RESULT  detail' -> 'RESULT detail'
    return rows


def test_every_check_passes_and_the_summary_lists_them(bed, inventory, model_server):
    run = _verify(bed, inventory, {"verify_model_name": "iris"})
    assert run.rc == 0, failure_text(run)
    print("\n".join(run.result(SUMMARY, "localhost")["msg"]))
    rows = _rows(run)
    assert rows[("pc1", "component monitoring (monitoring)")].startswith("PASS 2 workload(s) ready")
    assert rows[("pc1", "component mlflow (mlflow)")].startswith("PASS")
    assert rows[("pc1", "component kubeflow (kubeflow)")].startswith("SKIP namespace kubeflow does not exist")
    for sc in ("sc1", "sc2"):
        assert rows[(sc, "component kserve (kserve)")].startswith("PASS")
        assert rows[(sc, "component cert-manager (cert-manager)")].startswith("PASS")
        assert rows[(sc, "component monitoring (monitoring)")] == "PASS 1 workload(s) ready"
        assert rows[(sc, "federated to the PC Prometheus")].startswith("PASS target up"), rows
        assert rows[(sc, "deployer access (models)")].startswith("PASS InferenceServices in models only"), rows
    assert rows[("sc1", "model iris InferenceService")] == f"PASS Ready at {URL}"
    assert rows[("sc1", "model iris v2 infer")].startswith("PASS POST")
    assert "[0, 1, 2]" in rows[("sc1", "model iris v2 infer")]
    assert rows[("sc2", "model iris InferenceService")].startswith("SKIP not deployed")
    assert ("sc2", "model iris v2 infer") not in rows
    assert not [r for r in rows.values() if r.startswith("FAIL")]
    assert model_server.hosts[-1] == urlsplit(URL).netloc  # the Host header an ingress routes on
    assert f"POST {model_server.url}/v2/models/iris/infer" in rows[("sc1", "model iris v2 infer")]  # through sc1's ingress_url
    # the entry point the verification went through is the one the real KServe controller created from the role's config
    [ingress] = bed.list("sc1", "networking.k8s.io/v1", "Ingress", "models")
    assert ingress["metadata"]["name"] == "iris" and ingress["spec"]["ingressClassName"] == "nginx"
    assert {rule["host"] for rule in ingress["spec"]["rules"]} >= {urlsplit(URL).hostname}
    assert run.result(SUMMARY, "localhost")["msg"][-1].endswith("0 failed, 4 skipped")


def test_a_model_behind_no_entry_point_is_a_skip_with_the_port_forward_to_run(bed, inventory):
    run = _verify(bed, inventory, {"verify_model_name": "iris", "kserve_inference_entry": "none"})
    assert run.rc == 0, failure_text(run)
    row = _rows(run)[("sc1", "model iris v2 infer")]
    assert row.startswith("SKIP kserve_inference_entry is none"), row
    assert "kubectl -n models port-forward service/iris-predictor 8080:80" in row and "verify_model_url" in row, row
    assert run.result(SUMMARY, "localhost")["msg"][-1].endswith("0 failed, 5 skipped")


def test_no_model_configured_is_a_visible_skip(bed, inventory):
    run = _verify(bed, inventory)
    assert run.rc == 0, failure_text(run)
    assert _rows(run)[("(all)", "model v2 endpoint")].startswith("SKIP no model configured")


def test_failures_are_collected_and_name_the_missing_sc(bed, inventory, prometheus):
    from kubernetes.client import CoreV1Api  # noqa: PLC0415

    # sc1: the KServe controller becomes unavailable (its nodes are cordoned and its pod is gone, the
    # replacement cannot be scheduled); sc2: its Prometheus stops.
    core = CoreV1Api(bed.api("sc1"))
    for node in core.list_node().items:
        core.patch_node(node.metadata.name, {"spec": {"unschedulable": True}})
    for pod in core.list_namespaced_pod("kserve", label_selector="control-plane=kserve-controller-manager").items:
        core.delete_namespaced_pod(pod.metadata.name, "kserve")
    wait_until("Deployment kserve-controller-manager unavailable on sc1",
               lambda: not _available(bed, "sc1", "Deployment", "kserve-controller-manager", "kserve"))
    prometheus["sc2"].stop()
    run = _verify(bed, inventory, {"verify_model_name": "iris", "verify_federation_retries": 4})
    assert run.rc != 0, failure_text(run)
    rows = _rows(run)
    assert rows[("sc2", "federated to the PC Prometheus")].startswith("FAIL"), rows
    assert 'cluster="sc2"' in rows[("sc2", "federated to the PC Prometheus")]
    assert rows[("sc1", "federated to the PC Prometheus")].startswith("PASS"), rows
    assert rows[("sc1", "component kserve (kserve)")] == "FAIL not ready: Deployment/kserve-controller-manager"
    assert rows[("sc1", "model iris v2 infer")].startswith("PASS")  # later checks still ran
    failure = run.result("Fail when a check failed", "localhost")["msg"]
    assert "2 check(s) failed" in failure
    assert "sc2 / federated to the PC Prometheus" in failure and "sc1 / component kserve (kserve)" in failure
