"""Role kube_prometheus_stack on real control planes (kwok nodes) with the real helm.

The chart is our kube-prometheus-stack fixture chart (80.13.3, strict values schema) served by
the bed's chart repository. Asserts the Helm values the releases received, as real helm
reports them: each SC's externalLabels carry its cluster name and its ServiceMonitor
selection is explicit; the PC's additionalScrapeConfigs hold exactly one federate job per SC
(cluster label, match[]), adding an SC to the inventory adds exactly its job; reruns and
check mode change nothing (the release stays at revision 1); the dashboard ConfigMap carries
the sidecar label; the generated Grafana password is stable across runs and survives a
teardown.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.platform_bed import PlatformBed, failure_text

RELEASE = "kube-prometheus-stack"
NS = "monitoring"


def _hostvars(names):
    return {n: {"kube_prometheus_stack_federation_url": f"http://{n}.example.com:30090"} for n in names}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("kps"), clusters=("pc1", "sc1", "sc2", "sc3"))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def first_run(bed):
    inv = bed.inventory(sc=("sc1", "sc2"), hostvars=_hostvars(["sc1", "sc2"]))
    run = bed.run("kube_prometheus_stack_role.yml", inv)
    assert run.rc == 0, failure_text(run)
    return inv, run


def _jobs(bed):
    values = bed.release("pc1", NS, RELEASE)["values"]
    return {j["job_name"]: j for j in values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]}


def test_secondary_values_carry_cluster_label_and_selection(bed, first_run):
    for sc in ("sc1", "sc2"):
        rel = bed.release(sc, NS, RELEASE)
        assert rel["version"] == "80.13.3"
        spec = rel["values"]["prometheus"]["prometheusSpec"]
        assert spec["externalLabels"] == {"cluster": sc}
        assert spec["serviceMonitorSelector"] == {"matchLabels": {"release": RELEASE}}
        assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
        assert rel["values"]["prometheus"]["service"]["type"] == "NodePort"
        assert rel["values"]["grafana"]["enabled"] is False
        assert "additionalScrapeConfigs" not in spec


def test_primary_values_have_one_federate_job_per_sc(bed, first_run):
    jobs = _jobs(bed)
    assert sorted(jobs) == ["federate-sc1", "federate-sc2"]
    for sc in ("sc1", "sc2"):
        job = jobs[f"federate-{sc}"]
        assert job["metrics_path"] == "/federate"
        assert job["honor_labels"] is True
        assert job["static_configs"] == [{"targets": [f"{sc}.example.com:30090"], "labels": {"cluster": sc}}]
        assert job["params"]["match[]"] and all("models" in m for m in job["params"]["match[]"])
    values = bed.release("pc1", NS, RELEASE)["values"]
    assert values["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    assert values["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"


def test_dashboard_configmap_has_sidecar_label(bed, first_run):
    cm = bed.get("pc1", "v1", "ConfigMap", "nga4m-served-models", NS)
    assert cm is not None
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["nga4m-served-models.json"])
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource", "cluster", "model"]
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in ("nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
                   "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
                   "nv_inference_compute_infer_duration_us", "request_predict_seconds_bucket"):
        assert metric in exprs
    assert bed.get("sc1", "v1", "ConfigMap", "nga4m-served-models", NS) is None


def _grafana_password(bed):
    secret = bed.get("pc1", "v1", "Secret", "grafana-admin", NS)
    return base64.b64decode(secret["data"]["admin-password"]).decode()


def test_rerun_and_check_mode_change_nothing(bed, first_run):
    inv, _run = first_run
    password = _grafana_password(bed)
    assert len(password) == 32
    check = bed.run("kube_prometheus_stack_role.yml", inv, check=True, diff=True)
    assert check.rc == 0, failure_text(check)
    assert check.changed_total() == 0, failure_text(check)
    again = bed.run("kube_prometheus_stack_role.yml", inv)
    assert again.rc == 0, failure_text(again)
    assert again.changed_total() == 0, failure_text(again)
    assert _grafana_password(bed) == password
    assert bed.release("pc1", NS, RELEASE)["revision"] == 1


def test_check_mode_on_a_fresh_cluster(bed):
    inv = bed.inventory(sc=("sc3",), hostvars=_hostvars(["sc3"]), name="inventory-fresh.yml")
    run = bed.run("kube_prometheus_stack_role.yml", inv, check=True, diff=True)
    assert run.rc == 0, failure_text(run)
    assert bed.get("sc3", "v1", "Namespace", NS) is None
    with pytest.raises(KeyError):
        bed.release("sc3", NS, RELEASE)


def test_adding_an_sc_adds_exactly_its_job(bed, first_run):
    before = _jobs(bed)
    inv = bed.inventory(sc=("sc1", "sc2", "sc3"), hostvars=_hostvars(["sc1", "sc2", "sc3"]), name="inventory3.yml")
    run = bed.run("kube_prometheus_stack_role.yml", inv)
    assert run.rc == 0, failure_text(run)
    after = _jobs(bed)
    assert sorted(set(after) - set(before)) == ["federate-sc3"]
    assert {k: after[k] for k in before} == before
    assert after["federate-sc3"]["static_configs"][0]["labels"] == {"cluster": "sc3"}
    assert bed.release("sc3", NS, RELEASE)["values"]["prometheus"]["prometheusSpec"]["externalLabels"] == {"cluster": "sc3"}
    # Only the new SC's release and the PC's release changed.
    changed = {h: s["changed"] for h, s in run.stats.items() if s["changed"]}
    assert set(changed) == {"pc1", "sc3"}, changed


def test_teardown_keeps_the_admin_secret_and_a_reinstall_reuses_it(bed, first_run):
    """Teardown without delete_data: release and dashboard gone, the Grafana admin Secret kept; a reinstall reuses it."""
    inv, _run = first_run
    password = _grafana_password(bed)
    teardown = {"teardown_roles": ["kube_prometheus_stack"], "teardown_hosts": "pc"}
    run = bed.run("platform_teardown.yml", inv, extra_vars=teardown)
    assert run.rc == 0, failure_text(run)
    with pytest.raises(KeyError):
        bed.release("pc1", NS, RELEASE)
    assert bed.get("pc1", "v1", "ConfigMap", "nga4m-served-models", NS) is None
    assert _grafana_password(bed) == password
    again = bed.run("platform_teardown.yml", inv, extra_vars=teardown)
    assert again.rc == 0, failure_text(again)
    assert again.changed_total() == 0, failure_text(again)
    reinstall = bed.run("kube_prometheus_stack_role.yml", inv)
    assert reinstall.rc == 0, failure_text(reinstall)
    assert _grafana_password(bed) == password
    assert bed.release("pc1", NS, RELEASE)["values"]["grafana"]["admin"]["existingSecret"] == "grafana-admin"
