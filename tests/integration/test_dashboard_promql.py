"""Every PromQL expression of the served-models dashboard runs on a real Prometheus.

The dashboard is rendered from the kube_prometheus_stack role's template and
vars. Template variables are substituted ($cluster -> sc1, $model -> .*,
$__rate_interval -> 1m) and each panel query must succeed; the variables'
label_values() queries must work through the series API. A local exporter
serves Triton-like (nv_inference_*) and KServe (request_predict_seconds) series
so the main panels also return data.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers.playbook import run_playbook
from tests.helpers.procs import free_port
from tests.helpers.prometheus import PrometheusServer
from tests.integration.platform_bed import PLAYBOOKS

TRITON_TEXT = """# TYPE nv_inference_request_success counter
nv_inference_request_success{model="iris",version="1"} %(n)d
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="iris",version="1"} %(f)d
# TYPE nv_inference_count counter
nv_inference_count{model="iris",version="1"} %(n)d
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="iris",version="1"} %(d)d
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="iris",version="1"} %(q)d
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="iris",version="1"} %(c)d
# TYPE request_predict_seconds histogram
request_predict_seconds_bucket{model_name="iris",le="0.005"} %(n)d
request_predict_seconds_bucket{model_name="iris",le="0.01"} %(n)d
request_predict_seconds_bucket{model_name="iris",le="+Inf"} %(n)d
request_predict_seconds_sum{model_name="iris"} %(s)f
request_predict_seconds_count{model_name="iris"} %(n)d
"""


class _Exporter:
    """Text exposition with counters that grow on every scrape (Triton names, no _total suffix)."""

    def __init__(self):
        self.count = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.count += 10
                n = outer.count
                body = (TRITON_TEXT % {"n": n, "f": n // 10, "d": n * 900, "q": n * 100, "c": n * 700, "s": n * 0.004}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    dest = tmp_path_factory.mktemp("dash") / "dashboard.json"
    run = run_playbook(PLAYBOOKS / "kube_prometheus_stack_dashboard.yml", extra_vars={"dashboard_dest": str(dest)})
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return json.loads(dest.read_text())


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    exporter = _Exporter()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "models", "scrape_interval": "1s", "scrape_timeout": "1s",
                            "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"], "labels": {"cluster": "sc1"}}]}],
    }
    server = PrometheusServer(config, tmp_path_factory.mktemp("prom"), name="dash")
    try:
        server.start()
        server.wait_for('nv_inference_count{cluster="sc1"}', timeout=30)
        yield server
    finally:
        server.stop()
        exporter.stop()


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


def test_main_panels_return_data(dashboard, prometheus):
    prometheus.wait_for(substitute(_targets(dashboard)[0][1]), timeout=30)
    for title, expr in _targets(dashboard):
        if "success" in title.lower() or "Inferences" in title or "latency" in title.lower():
            assert prometheus.wait_for(substitute(expr), timeout=15), title


def test_template_variable_queries_run(dashboard, prometheus):
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
        assert m, var
        selector, label = substitute(m.group(1)), m.group(2)
        values = prometheus.api(f"label/{label}/values", **{"match[]": [selector]})
        assert values, (var["name"], selector)
