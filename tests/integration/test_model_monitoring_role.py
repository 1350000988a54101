"""Role model_monitoring on an emulated SC (kube API double).

The Service exposes port 8002 (name ``metrics``) of the model pods selected by
``component=predictor``; the ServiceMonitor carries ``release=<kube-prometheus-stack
release>`` (what the release's serviceMonitorSelector picks) and scrapes that
port in the models namespace. Reruns and check mode change nothing; teardown
removes both.
"""

from __future__ import annotations

import pytest

from tests.integration.platform_bed import PlatformBed, failure_text


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("mm"), clusters=("pc1", "sc1"))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def inventory(bed):
    return bed.inventory(sc=("sc1",))


@pytest.fixture(scope="module")
def first_run(bed, inventory):
    run = bed.run("model_monitoring_role.yml", inventory)
    assert run.rc == 0, failure_text(run)
    return run


def test_service_exposes_the_metrics_port(bed, first_run):
    svc = bed.get("sc1", "v1", "Service", "model-metrics", "models")
    assert svc["spec"]["selector"] == {"component": "predictor"}
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("metrics", 8002, 8002)]


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
