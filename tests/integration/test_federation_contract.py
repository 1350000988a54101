"""Federation contract: the Helm values the PC release received, loaded into a real Prometheus, federate a real SC.

The kube_prometheus_stack role runs on real clusters of the session bed (real
kube-apiserver, the real ``helm`` installing the bed's kube-prometheus-stack fixture
chart). The SC Prometheus here is a real Debian ``prometheus`` configured with the
``externalLabels`` its release was given (as ``helm get values`` reports them),
scraping a local exporter; the PC Prometheus is a real ``prometheus`` whose scrape
configs are exactly the ``additionalScrapeConfigs`` of the PC release's values
(checked by ``promtool``).
"""

from __future__ import annotations

import pytest
import yaml

from tests.helpers.prometheus import LocalExporter, PrometheusServer, promtool_check_config, scrape_config_for
from tests.integration.platform_bed import PlatformBed, failure_text

RELEASE = "kube-prometheus-stack"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("contract"), clusters=("pc1", "sc1"))
    yield bed
    bed.stop()


def test_pc_release_values_federate_a_real_sc(bed, tmp_path):
    exporter = LocalExporter({"models": ["iris"], "other": ["noise"]}).start()
    sc_server = None
    try:
        # Start the SC first with a placeholder config so its URL is known, then run the role.
        sc_server = PrometheusServer(scrape_config_for(exporter, interval="1s"), tmp_path, name="sc1")
        sc_server.start()
        # a real Prometheus on loopback stands in for the SC's (its URL is not the Service's NodePort)
        inv = bed.inventory(sc=("sc1",), hostvars={"sc1": {"kube_prometheus_stack_federation_url": sc_server.url,
                                                           "kube_prometheus_stack_federation_url_check": False}})
        run = bed.run("kube_prometheus_stack_role.yml", inv,
                      extra_vars={"kube_prometheus_stack_federation_scrape_interval": "1s"})
        assert run.rc == 0, failure_text(run)

        sc_values = bed.release("sc1", "monitoring", RELEASE)["values"]
        external = sc_values["prometheus"]["prometheusSpec"]["externalLabels"]
        assert external == {"cluster": "sc1"}
        # Restart the SC with the external labels its release was given.
        sc_server.stop()
        sc_server = PrometheusServer(scrape_config_for(exporter, interval="1s", external_labels=external), tmp_path, name="sc1b")
        sc_server.port = None
        sc_server.start()
        jobs = bed.release("pc1", "monitoring", RELEASE)["values"]["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]
        # The SC restarted on a new port: point the release's job at it (the only edit).
        assert len(jobs) == 1 and jobs[0]["job_name"] == "federate-sc1"
        jobs[0]["static_configs"][0]["targets"] = [sc_server.address]

        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}
        path = tmp_path / "pc.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        check = promtool_check_config(path)
        assert check.returncode == 0, check.stdout + check.stderr
        with PrometheusServer(config, tmp_path, name="pc1") as pc_server:
            found = pc_server.wait_for('nga4m_test_model_up{cluster="sc1"}', timeout=40)
            assert {s["metric"]["namespace"] for s in found} == {"models"}
            assert {s["metric"]["job"] for s in found} == {"exporter"}  # honor_labels keeps the SC's job
            assert pc_server.query('nga4m_test_model_up{namespace="other"}') == []
    finally:
        if sc_server is not None:
            sc_server.stop()
        exporter.stop()
