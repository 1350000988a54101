"""The SC's inference entry point (kserve_inference_entry) as KServe's real controller builds it.

Real: an SC control plane of the session bed (kwok nodes), the kserve role with the real helm,
KServe's real controller manager (bed_runner runs it for the chart's controller pod), and the
Gateway API's own CRDs at the version KServe was built with (read from the Go module cache that
``tools/gobuild`` filled when it built the manager: nothing of them is committed). No Gateway
controller runs on the bed, so nothing answers on the Gateway: the tests assert what KServe
creates from the configuration the role gave it, and what the role refuses before any change.
The ``ingress`` entry is covered end to end by test_verify_playbook.py, ``none`` by
test_deploy_model.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.kubebed import bin_dir
from tests.integration.platform_bed import PlatformBed, failure_text, wait_until

S3 = {"kserve_s3_endpoint": "minio.storage.example.com:9000", "kserve_s3_access_key": "test-access",
      "kserve_s3_secret_key": "test-secret-value"}
GATEWAY_ENTRY = {"kserve_inference_entry": "gateway-api", "kserve_ingress_gateway": "gateways/kserve",
                 "kserve_ingress_domain": "sc1.example.test"}
HTTPROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
ISVC = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": {"name": "iris", "namespace": "models"},
        "spec": {"predictor": {"serviceAccountName": "kserve-models",
                               "model": {"modelFormat": {"name": "triton"}, "runtime": "nga4m-tritonserver", "protocolVersion": "v2",
                                         "storageUri": "s3://nga4m/models/triton"}}}}


def gateway_api_crds() -> list[dict]:
    """The standard-channel CRDs of the Gateway API module KServe's manager was built with (Go module cache)."""
    module = bin_dir().parent / "kserve"
    env = dict(os.environ, GOPROXY="off", GOFLAGS="-mod=mod")
    proc = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api"], cwd=module, env=env,  # noqa: S607
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"cannot find the Gateway API module of the KServe build in {module}: {proc.stderr}"
    crd_dir = Path(proc.stdout.strip()) / "config" / "crd" / "standard"
    docs = [doc for path in sorted(crd_dir.glob("gateway.networking.k8s.io_*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    docs = [d for d in docs if d and d.get("kind") == "CustomResourceDefinition"]
    assert {d["metadata"]["name"] for d in docs} >= {"gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"}
    return docs


def _apply(bed, cluster, docs):
    from kubernetes import dynamic  # noqa: PLC0415

    client = dynamic.DynamicClient(bed.api(cluster))
    for doc in docs:
        res = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        client.server_side_apply(res, body=doc, namespace=doc["metadata"].get("namespace"), field_manager="nga4m-test", force_conflicts=True)


def _established(bed, cluster, name):
    crd = bed.get(cluster, "apiextensions.k8s.io/v1", "CustomResourceDefinition", name) or {}
    return any(c["type"] == "Established" and c["status"] == "True" for c in crd.get("status", {}).get("conditions", []))


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("entry"), clusters=("sc1", "sc2"))
    try:
        for cluster in ("sc1", "sc2"):
            crds = gateway_api_crds()
            _apply(bed, cluster, crds)
            for crd in crds:
                wait_until(f"{crd['metadata']['name']} Established", lambda c=cluster, n=crd["metadata"]["name"]: _established(bed, c, n))
        _apply(bed, "sc1", [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gateways"}},
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "example"},
             "spec": {"controllerName": "example.net/gateway-controller"}},
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "kserve", "namespace": "gateways"},
             "spec": {"gatewayClassName": "example", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80,
                                                                    "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
        ])
        yield bed
    finally:
        bed.stop()


def test_gateway_api_entry_makes_kserve_route_each_model_through_the_gateway(bed):
    inv = bed.inventory(pc=(), sc=("sc1",), hostvars={"sc1": {**S3, **GATEWAY_ENTRY}})
    run = bed.run("kserve_role.yml", inv)
    assert run.rc == 0, failure_text(run)
    again = bed.run("kserve_role.yml", inv)
    assert again.rc == 0 and again.changed_total() == 0, failure_text(again)
    _apply(bed, "sc1", [ISVC])
    # KServe's real controller, configured by the role, attached an HTTPRoute for the model's host to our Gateway
    route = wait_until("the HTTPRoute of iris", lambda: bed.get("sc1", *HTTPROUTE, "iris", "models"))
    assert route["spec"]["hostnames"] == ["iris-models.sc1.example.test"], route["spec"]
    assert [(p.get("namespace"), p["name"]) for p in route["spec"]["parentRefs"]] == [("gateways", "kserve")], route["spec"]
    assert bed.list("sc1", "networking.k8s.io/v1", "Ingress", "models") == []  # no Ingress beside the route


def test_gateway_api_entry_without_the_gateway_is_refused_before_any_change(bed):
    # sc2 serves the Gateway API but holds no Gateway gateways/kserve
    inv = bed.inventory(pc=(), sc=("sc2",), hostvars={"sc2": {**S3, **GATEWAY_ENTRY}}, name="inventory-no-gateway.yml")
    run = bed.run("kserve_role.yml", inv)
    assert run.rc != 0
    text = failure_text(run)
    assert "Gateway gateways/kserve (kserve_ingress_gateway) does not exist on this cluster" in text, text
    assert run.changed_total() == 0
    assert bed.releases("sc2") == []
    assert bed.get("sc2", "v1", "Namespace", "models") is None
