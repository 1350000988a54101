"""Every PromQL expression of the served-models dashboard runs on a real Prometheus.

The dashboard is rendered from the kube_prometheus_stack role's template and
vars. Template variables are substituted ($cluster -> sc1, $model -> .*,
$__rate_interval -> 1m) and each panel query must succeed; the variables'
label_values() queries must work through the series API. The real Triton Inference
Server (tests/helpers/triton.py) serves an iris model under steady requests and a real
Prometheus scrapes its metrics port, so every Triton panel must return data.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.helpers.onnx_models import iris_classifier
from tests.helpers.playbook import run_playbook
from tests.helpers.prometheus import PrometheusServer
from tests.helpers.triton import TritonServer
from tests.integration.platform_bed import PLAYBOOKS

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.4, 3.2, 4.5, 1.5], [6.3, 3.3, 6.0, 2.5]]


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    """The real tritonserver over a one-model repository published as the triton module publishes it."""
    from ansible_collections.nga4m.platform.plugins.module_utils import triton as triton_utils  # noqa: PLC0415

    work = tmp_path_factory.mktemp("triton")
    repo = work / "repo"
    model = iris_classifier(repo / "iris" / "1" / "model.onnx")
    _config, text = triton_utils.prepare_config("iris", triton_utils.read_onnx(str(model)), {"max_batch_size": 8})
    (repo / "iris" / "config.pbtxt").write_text(text)
    with TritonServer(work, local_path=repo, prefix="", poll_secs=0) as server:
        yield server


def _infer(server, rows):
    body = json.dumps({"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP32",
                                   "data": [v for row in rows for v in row]}]}).encode()
    request = urllib.request.Request(f"{server.url}/v2/models/iris/infer", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


class _Traffic:
    """Inference requests to Triton in a thread, so its counters grow while Prometheus scrapes them."""

    def __init__(self, server):
        self.stopped = threading.Event()
        self.errors: list = []

        def loop():
            while not self.stopped.wait(0.2):
                try:
                    _infer(server, ROWS)
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(exc)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    dest = tmp_path_factory.mktemp("dash") / "dashboard.json"
    run = run_playbook(PLAYBOOKS / "kube_prometheus_stack_dashboard.yml", extra_vars={"dashboard_dest": str(dest)})
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return json.loads(dest.read_text())


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, triton):
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "models", "scrape_interval": "1s", "scrape_timeout": "1s",
                            "static_configs": [{"targets": [f"127.0.0.1:{triton.metrics_port}"], "labels": {"cluster": "sc1"}}]}],
    }
    server = PrometheusServer(config, tmp_path_factory.mktemp("prom"), name="dash")
    traffic = _Traffic(triton)
    try:
        server.start()
        server.wait_for('nv_inference_count{cluster="sc1"}', timeout=30)
        yield server
    finally:
        traffic.stop()
        server.stop()
    assert not traffic.errors, traffic.errors[:3]


def substitute(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$cluster", "sc1").replace("$model", ".*")


def _targets(dashboard):
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_has_the_expected_panels(dashboard):
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(titles) == len(set(titles)) >= 8
    assert len({p["id"] for p in dashboard["panels"]}) == len(titles)
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])


def test_every_panel_expression_runs(dashboard, prometheus):
    errors = []
    for title, expr in _targets(dashboard):
        query = substitute(expr)
        assert "$" not in query, query
        try:
            prometheus.query(query)
        except (urllib.error.HTTPError, RuntimeError) as exc:
            body = exc.read().decode() if isinstance(exc, urllib.error.HTTPError) else str(exc)
            errors.append(f"{title}: {query}: {body}")
    assert not errors, "\n".join(errors)


def test_triton_panels_return_data(dashboard, prometheus):
    """Every Triton panel returns data from the real server's nv_inference_* series (the KServe panels are for
    KServe's Python model servers, which this platform does not deploy: they only have to run)."""
    triton_panels = [(title, expr) for title, expr in _targets(dashboard) if "Triton" in title]
    assert len(triton_panels) >= 6
    for title, expr in triton_panels:
        assert prometheus.wait_for(substitute(expr), timeout=30), title


def test_template_variable_queries_run(dashboard, prometheus):
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
        assert m, var
        selector, label = substitute(m.group(1)), m.group(2)
        values = prometheus.api(f"label/{label}/values", **{"match[]": [selector]})
        assert values, (var["name"], selector)
