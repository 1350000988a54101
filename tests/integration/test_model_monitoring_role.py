"""Role model_monitoring on a real SC control plane (kube-apiserver, controllers, kwok nodes).

The test playbook first applies what the role expects to find: the monitoring CRDs of the
kube-prometheus-stack fixture chart (the files its ``crds/`` holds) and the models namespace.
The Service exposes port 8002 (name ``metrics``) of the model pods selected by
``component=predictor``: a kwok pod with that label gets into the Service's EndpointSlice
(the real endpoint-slice controller), another pod does not; the ServiceMonitor, validated
against the CRD's schema, carries ``release=<kube-prometheus-stack release>`` (what the
release's serviceMonitorSelector picks) and scrapes that port in the models namespace.
Reruns and check mode change nothing; teardown removes both.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.platform_bed import PlatformBed, failure_text


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("mm"), clusters=("sc1",))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def inventory(bed):
    return bed.inventory(pc=(), sc=("sc1",))


@pytest.fixture(scope="module")
def first_run(bed, inventory):
    run = bed.run("model_monitoring_role.yml", inventory)
    assert run.rc == 0, failure_text(run)
    return run


def test_service_exposes_the_metrics_port(bed, first_run):
    svc = bed.get("sc1", "v1", "Service", "model-metrics", "models")
    assert svc["spec"]["selector"] == {"component": "predictor"}
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("metrics", 8002, 8002)]


def _pod(name: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "models", "labels": labels},
            "spec": {"containers": [{"name": "kserve-container", "image": "registry.invalid/triton:0",
                                     "ports": [{"name": "metrics", "containerPort": 8002}]}]}}


def _endpoint_pods(bed, timeout: float = 60) -> set:
    """Names of the pods in the model-metrics Service's EndpointSlices, once a Ready pod is listed."""
    deadline = time.monotonic() + timeout
    while True:
        slices = [s for s in bed.list("sc1", "discovery.k8s.io/v1", "EndpointSlice", "models")
                  if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == "model-metrics"]
        ready = {(e.get("targetRef") or {}).get("name") for s in slices for e in s.get("endpoints") or []
                 if (e.get("conditions") or {}).get("ready")}
        if ready or time.monotonic() > deadline:
            return ready
        time.sleep(0.5)


def test_service_selects_the_predictor_pods(bed, first_run):
    """The real endpoint-slice controller puts the predictor pod (Ready on a kwok node) behind port 8002, not the other."""
    from kubernetes import dynamic  # noqa: PLC0415

    pods = dynamic.DynamicClient(bed.api("sc1")).resources.get(api_version="v1", kind="Pod")
    pods.create(body=_pod("iris-predictor-0", {"component": "predictor", "serving.kserve.io/inferenceservice": "iris"}), namespace="models")
    pods.create(body=_pod("iris-transformer-0", {"component": "transformer"}), namespace="models")
    assert _endpoint_pods(bed) == {"iris-predictor-0"}
    slices = [s for s in bed.list("sc1", "discovery.k8s.io/v1", "EndpointSlice", "models")
              if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == "model-metrics"]
    assert {(p["name"], p["port"]) for s in slices for p in s.get("ports") or []} == {("metrics", 8002)}


def test_servicemonitor_is_selected_by_the_release(bed, first_run):
    sm = bed.get("sc1", "monitoring.coreos.com/v1", "ServiceMonitor", "model-metrics", "models")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["models"]}
    svc = bed.get("sc1", "v1", "Service", "model-metrics", "models")
    selector = sm["spec"]["selector"]["matchLabels"]
    assert all(svc["metadata"]["labels"].get(k) == v for k, v in selector.items())
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}]


def test_rerun_and_check_mode_change_nothing(bed, inventory, first_run):
    check = bed.run("model_monitoring_role.yml", inventory, check=True, diff=True)
    assert check.rc == 0 and check.changed_total() == 0, failure_text(check)
    again = bed.run("model_monitoring_role.yml", inventory)
    assert again.rc == 0 and again.changed_total() == 0, failure_text(again)


def test_teardown(bed, inventory, first_run):
    run = bed.run("platform_teardown.yml", inventory, extra_vars={"teardown_roles": ["model_monitoring"]})
    assert run.rc == 0, failure_text(run)
    assert bed.get("sc1", "monitoring.coreos.com/v1", "ServiceMonitor", "model-metrics", "models") is None
    assert bed.get("sc1", "v1", "Service", "model-metrics", "models") is None
