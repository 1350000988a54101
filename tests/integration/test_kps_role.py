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
import time

import bcrypt
import pytest

from tests.helpers.procs import free_port
from tests.helpers.prometheus import LocalExporter, PrometheusServer, scrape_config_for
from tests.integration.platform_bed import PlatformBed, failure_text

RELEASE = "kube-prometheus-stack"
NS = "monitoring"


def _hostvars(names):
    return {n: {"kube_prometheus_stack_federation_url": f"http://{n}.example.com:30090"} for n in names}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("kps"), clusters=("pc1", "sc1", "sc2", "sc3", "sc4"))
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


def test_basic_auth_lets_the_primary_federate_the_secondary_through_real_prometheus_servers(bed, tmp_path):
    """SC basic auth end to end: the SC's Secret holds a bcrypt htpasswd entry, the PC the matching password.

    Nothing on the bed enforces the SC ingress's basic auth (no ingress controller runs), so a real
    Prometheus whose web config takes the SC Secret's entry (basic_auth_users accepts bcrypt, as
    ingress-nginx's auth_basic does) stands at the SC's federation URL; a real PC Prometheus scrapes it
    with the job from the PC's release values and the password from the PC's federation Secret.
    """
    port = free_port()
    # the real Prometheus on loopback stands in for the SC's ingress host, so the URL is not the ingress's
    hostvars = {"sc4": {"kube_prometheus_stack_federation_url": f"http://127.0.0.1:{port}", "kube_prometheus_stack_federation_url_check": False,
                        "kube_prometheus_stack_prometheus_ingress_enabled": True,
                        "kube_prometheus_stack_prometheus_ingress_host": "prometheus.sc4.example.com",
                        "kube_prometheus_stack_prometheus_basic_auth_enabled": True,
                        "kube_prometheus_stack_prometheus_basic_auth_username": "federate"}}
    inv = bed.inventory(sc=("sc4",), hostvars=hostvars, name="inventory-auth.yml")
    run = bed.run("kube_prometheus_stack_role.yml", inv)
    assert run.rc == 0, failure_text(run)
    again = bed.run("kube_prometheus_stack_role.yml", inv)
    assert again.rc == 0 and again.changed_total() == 0, failure_text(again)

    data = bed.get("sc4", "v1", "Secret", f"{RELEASE}-basic-auth", NS)["data"]
    user, _colon, hashed = base64.b64decode(data["auth"]).decode().partition(":")
    sc_password = base64.b64decode(data["password"])
    assert user == "federate" and hashed.startswith("$2b$") and bcrypt.checkpw(sc_password, hashed.encode())
    assert sc_password.decode() not in run.stdout + again.stdout and hashed not in run.stdout + again.stdout
    pc_password = base64.b64decode(bed.get("pc1", "v1", "Secret", "federation-basic-auth", NS)["data"]["sc4"])
    assert pc_password == sc_password
    job = _jobs(bed)["federate-sc4"]
    assert job["basic_auth"]["username"] == "federate"
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]

    def pc_health(password: bytes, work) -> str:
        work.mkdir(parents=True, exist_ok=True)
        (work / "password").write_bytes(password)
        pc_job = {**job, "scrape_interval": "1s", "scrape_timeout": "1s",
                  "basic_auth": {**job["basic_auth"], "password_file": str(work / "password")}}
        with PrometheusServer({"scrape_configs": [pc_job]}, work, name="pc") as pc:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                health = {t["scrapePool"]: (t["health"], t["lastError"]) for t in pc.targets()}.get("federate-sc4", ("unknown", ""))
                if health[0] != "unknown":
                    if health[0] == "up":
                        pc.wait_for('nga4m_test_model_up{cluster="sc4"}', timeout=30)
                    return health[0] + " " + health[1]
                time.sleep(0.5)
            return "unknown"

    exporter = LocalExporter({"models": ["iris"]}).start()
    sc = PrometheusServer(scrape_config_for(exporter, interval="1s"), tmp_path, name="sc4", port=port,
                          web_config={"basic_auth_users": {user: hashed}})
    try:
        sc.start()
        assert pc_health(pc_password, tmp_path / "right").startswith("up")
        denied = pc_health(b"not-the-password", tmp_path / "wrong")
        assert denied.startswith("down") and "401" in denied, denied
    finally:
        sc.stop()
        exporter.stop()
