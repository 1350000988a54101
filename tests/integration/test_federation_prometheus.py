"""Real federation: an SC Prometheus scraping a local exporter, a PC Prometheus federating it.

The PC configuration is rendered by ``nga4m.platform.prometheus_federation``
through ``ansible-playbook``, checked by ``promtool`` and then served by a real
Prometheus that must show the SC's ``models`` series with ``cluster="sc1"`` (and
``sc2``, reached through a raw ``match[]`` selector narrowed to namespace ``models``) and never the ``other``
namespace - which the SC itself is first shown to hold, so that absence means
the selector worked, not that there was nothing to federate.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.playbook import run_playbook
from tests.helpers.prometheus import LocalExporter, PrometheusServer, promtool_check_config, scrape_config_for

PLAYBOOK = Path(__file__).parent / "playbooks" / "federation_render.yml"
MASKS = ("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER", "********")  # whole value / substring


@pytest.fixture(scope="module")
def sc_exporter():
    exporter = LocalExporter({"models": ["iris"], "other": ["noise"]}).start()
    yield exporter
    exporter.stop()


def _sc_server(exporter, tmp_path_factory, name):
    """An SC Prometheus under /<name>, scraping the exporter (namespaces models/other) every 1s."""
    server = PrometheusServer(scrape_config_for(exporter, interval="1s"), tmp_path_factory.mktemp(name), name=name, route_prefix=name)
    server.start()
    return server


@pytest.fixture(scope="module")
def sc_prometheus(sc_exporter, tmp_path_factory):
    server = _sc_server(sc_exporter, tmp_path_factory, "sc")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sc2_prometheus(sc_exporter, tmp_path_factory):
    """sc2 has its own Prometheus (two SCs may not share one: the PC would hold every series twice)."""
    server = _sc_server(sc_exporter, tmp_path_factory, "sc2")
    yield server
    server.stop()


def _clusters(sc_url, sc2_url):
    return [
        # sc2 first: the output must still be sorted by name.
        # A raw selector with namespaces: narrowed to them (match_scope namespaces), it must not reach namespace "other".
        {"name": "sc2", "url": sc2_url + "/", "namespaces": ["models"], "match": ["nga4m_test_model_requests_total"]},
        {"name": "sc1", "url": sc_url, "namespaces": ["models"]},
    ]


@pytest.fixture(scope="module")
def rendered(sc_prometheus, sc2_prometheus, tmp_path_factory):
    dest = tmp_path_factory.mktemp("pc") / "prometheus.yml"
    clusters = _clusters(sc_prometheus.url, sc2_prometheus.url)
    run = run_playbook(
        PLAYBOOK,
        extra_vars={"federation_clusters": clusters, "federation_dest": str(dest), "federation_mode": "0640"},
    )
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return {"run": run, "dest": dest, "clusters": clusters}


def test_render_writes_sorted_jobs_then_is_idempotent(rendered, sc_prometheus):
    run, dest = rendered["run"], rendered["dest"]
    first = run.result("Render federation config")
    second = run.result("Render federation config again")
    assert first["changed"] is True
    assert second["changed"] is False
    assert first["job_names"] == ["federate-sc1", "federate-sc2"]
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o640

    config = yaml.safe_load(dest.read_text(encoding="utf-8"))
    assert config == {"scrape_configs": first["scrape_configs"]}
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/sc/federate"
    assert job["honor_labels"] is True
    assert job["scrape_interval"] == "1s" and job["scrape_timeout"] == "1s"
    assert job["params"] == {"match[]": ['{namespace=~"models"}']}
    assert job["static_configs"] == [{"targets": [sc_prometheus.address], "labels": {"cluster": "sc1"}}]


def test_promtool_accepts_rendered_config(rendered):
    check = promtool_check_config(rendered["dest"])
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout + check.stderr


def test_check_mode_reports_change_writes_nothing_and_masks_secrets(rendered, sc_prometheus):
    dest = rendered["dest"]
    before = dest.read_bytes()
    mtime = dest.stat().st_mtime_ns
    clusters = rendered["clusters"] + [
        {"name": "sc3", "url": "https://prom.sc3.example:9443", "namespaces": ["models"], "username": "fed", "password": "s3cr3t-inline"}
    ]
    run = run_playbook(
        PLAYBOOK,
        extra_vars={"federation_clusters": clusters, "federation_dest": str(dest), "federation_secret": {}},
        check=True,
        diff=True,
    )
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
    res = run.result("Render federation config")
    assert res["changed"] is True
    assert "federate-sc3" in res["diff"]["after"] and "federate-sc3" not in res["diff"]["before"]
    assert res["diff"]["before"] == before.decode()
    assert dest.read_bytes() == before and dest.stat().st_mtime_ns == mtime
    assert not list(dest.parent.glob(".prometheus_federation.*")), "temporary file left behind"
    # Inline secrets are no_log options: Ansible masks them everywhere in the result.
    assert "s3cr3t-inline" not in run.stdout
    assert any("password_file" in warning for warning in res.get("warnings", []))
    sc3 = [job for job in res["scrape_configs"] if job["job_name"] == "federate-sc3"][0]
    assert sc3["basic_auth"]["username"] == "fed" and sc3["basic_auth"]["password"] in MASKS
    assert res["secret"]["kind"] == "Secret" and res["secret"]["metadata"]["namespace"] == "monitoring"
    assert "federate-sc3" in res["secret"]["stringData"]["additional-scrape-configs.yaml"]


@pytest.mark.parametrize("password", ["q'uote: x#y", 'back\\slash "dq"', "new\nline", "ünï-€ code"])
def test_rotating_an_inline_password_shows_neither_value_in_vvv_or_diff(tmp_path, password):
    """Issue: a rotation with --diff printed the old password; a quoted one escaped Ansible's exact-string masking."""
    import json  # noqa: PLC0415

    dest = tmp_path / "federation.yml"
    old = "Old-" + password

    def render(secret, **kwargs):
        clusters = [{"name": "sc1", "url": "http://127.0.0.1:9090", "namespaces": ["models"], "username": "fed", "password": secret},
                    {"name": "sc2", "url": "http://127.0.0.1:9091", "namespaces": ["models"], "bearer_token": secret}]
        run = run_playbook(PLAYBOOK, extra_vars={"federation_clusters": clusters, "federation_dest": str(dest),
                                                 "federation_secret": {}}, args=["-vvv"], **kwargs)
        assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
        return run

    render(old)
    runs = [render(password, check=True, diff=True), render(password, diff=True)]
    assert yaml.safe_load(dest.read_text(encoding="utf-8"))["scrape_configs"][0]["basic_auth"]["password"] == password
    diff = runs[-1].result("Render federation config")["diff"]
    assert "(secret, changed: not shown)" in diff["before"] + diff["after"]
    for run in runs:
        shown = run.stdout + run.stderr
        for secret in (old, password):
            for form in (secret, json.dumps(secret)[1:-1], yaml.safe_dump(secret).removesuffix("\n...\n").strip(),
                         json.dumps(json.dumps(secret))[1:-1]):
                assert form not in shown, form


def test_inline_secret_makes_dest_0600_unless_mode_is_given(tmp_path):
    dest = tmp_path / "federation-with-secret.yml"
    clusters = [{"name": "sc1", "url": "http://127.0.0.1:9090", "namespaces": ["models"], "username": "fed", "password": "s3cr3t-inline"}]

    def render(**extra):
        run = run_playbook(PLAYBOOK, extra_vars={"federation_clusters": clusters, "federation_dest": str(dest), **extra})
        assert run.rc == 0, run.stdout[-4000:] + run.stderr[-4000:]
        return run.result("Render federation config"), run.result("Render federation config again")

    first, second = render()
    assert first["changed"] is True and second["changed"] is False
    assert "s3cr3t-inline" in dest.read_text(encoding="utf-8")  # the file is the one place holding it in clear text
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600

    # an existing, looser file is tightened (a change of mode only), then left alone
    os.chmod(dest, 0o644)
    first, second = render()
    assert first["changed"] is True and second["changed"] is False
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600

    # the user's mode wins
    first, second = render(federation_mode="0640")
    assert first["changed"] is True and second["changed"] is False
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o640


def test_pc_federates_only_matching_series(rendered, sc_prometheus, tmp_path):
    # The negative assertions below only mean something if the SC holds the series the PC must not get:
    # wait until the SC has scraped namespace "other" (both metrics) before the PC starts, so every PC
    # scrape of /federate happens while those series exist on the SC.
    sc_other = sc_prometheus.wait_for('{namespace="other"}', timeout=30)
    assert {"nga4m_test_model_up", "nga4m_test_model_requests_total"} <= {s["metric"]["__name__"] for s in sc_other}, sc_other
    assert {s["metric"]["model"] for s in sc_other} == {"noise"}
    assert sc_prometheus.query('nga4m_test_model_up{namespace="models"}'), "the SC must hold the matching series too"
    pc = PrometheusServer(rendered["dest"], tmp_path, name="pc")
    with pc:
        started = time.monotonic()
        sc1 = pc.wait_for('nga4m_test_model_up{cluster="sc1"}', timeout=30)
        sc2 = pc.wait_for('nga4m_test_model_requests_total{cluster="sc2"}', timeout=max(5.0, 30 - (time.monotonic() - started)))
        for sample in sc1 + sc2:
            metric = sample["metric"]
            assert metric["namespace"] == "models", metric
            assert metric["job"] == "exporter", metric  # honor_labels kept the SC's labels
        assert {s["metric"]["cluster"] for s in sc1} == {"sc1"}
        # sc2 federates only the counter, sc1 federates every series of namespace models.
        assert not pc.query('nga4m_test_model_up{cluster="sc2"}')
        assert not pc.query('{namespace="other"}'), "series of namespace 'other' must not be federated"
        assert sc_prometheus.query('{namespace="other"}'), "the SC still holds namespace 'other' while the PC has none"
        assert not pc.query('{cluster=~"sc.*", namespace!="", namespace!="models"}')
        health = {t["labels"]["job"]: t["health"] for t in pc.targets()}
        assert health == {"federate-sc1": "up", "federate-sc2": "up"}
