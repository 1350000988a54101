"""Real Prometheus servers and a tiny exporter on loopback, for tests.

- ``PrometheusServer``: the Debian ``prometheus`` binary with a given config in a
  tmp dir, on a free 127.0.0.1 port, ready (``/-/ready``) before use, stopped
  with its process group.
- ``LocalExporter``: an in-process ``prometheus_client`` HTTP exporter whose
  series carry a ``namespace`` label (like kube-state / model-server series).
- ``promtool_check_config()``: run ``promtool check config`` on a file.
- ``release_federation_jobs()``: the federation jobs a PC's kube-prometheus-stack release
  received (``helm get values``), for a PC Prometheus run here.

Nothing here is a test double: these are the real components.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from tests.helpers.procs import ManagedProcess, free_port, wait_http

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def release_federation_jobs(kubeconfig, env: dict, interval: str = "1s") -> list[dict]:
    """``additionalScrapeConfigs`` of the kube_prometheus_stack role's release on the cluster of ``kubeconfig``, each job
    scraping every ``interval``; ``env`` holds the bed's helm home. Fails when helm or the jobs are missing."""
    import os  # noqa: PLC0415

    from tests.helpers.kubebed import bin_dir  # noqa: PLC0415

    defaults = yaml.safe_load((Path(__file__).resolve().parents[2] / "roles" / "kube_prometheus_stack" / "defaults" / "main.yml").read_text())
    got = subprocess.run([str(bin_dir() / "helm"), "--kubeconfig", str(kubeconfig), "get", "values",  # noqa: S603 - argv built here
                          defaults["kube_prometheus_stack_release_name"], "-n", defaults["kube_prometheus_stack_namespace"], "-o", "json"],
                         capture_output=True, text=True, env={**os.environ, **env}, check=False)
    if got.returncode != 0:
        raise RuntimeError(f"helm get values of the PC's kube-prometheus-stack release failed: {got.stderr}")
    values = json.loads(got.stdout or "{}") or {}
    jobs = values.get("prometheus", {}).get("prometheusSpec", {}).get("additionalScrapeConfigs")
    if not jobs:
        raise RuntimeError("the PC's kube-prometheus-stack release has no prometheus.prometheusSpec.additionalScrapeConfigs")
    for job in jobs:
        job["scrape_interval"] = job["scrape_timeout"] = interval
    return jobs


def promtool_check_config(path, syntax_only: bool = False) -> subprocess.CompletedProcess:
    """``promtool check config <path>``; ``syntax_only`` skips checking referenced files (CA, password files)."""
    argv = [PROMTOOL, "check", "config"] + (["--syntax-only"] if syntax_only else []) + [str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603 - fixed binary


class PrometheusServer:
    """A real Prometheus server for one test (use as a context manager or call start()/stop())."""

    def __init__(self, config, workdir, name: str = "prometheus", route_prefix: str = "", ready_timeout: float = 60.0,
                 web_config: dict | None = None, port: int | None = None):
        """``web_config``: Prometheus' --web.config.file (e.g. basic_auth_users); ``port``: listen there, else a free one."""
        self.name = name
        self.workdir = Path(workdir) / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "prometheus.yml"
        if isinstance(config, (str, Path)) and Path(str(config)).is_file():
            shutil.copyfile(str(config), self.config_path)
        elif isinstance(config, str):
            self.config_path.write_text(config, encoding="utf-8")
        else:
            self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.route_prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self.ready_timeout = ready_timeout
        self.web_config = web_config
        self.port: int | None = port
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Base URL including the route prefix, e.g. http://127.0.0.1:9xxx/sc."""
        return f"http://{self.address}{self.route_prefix}"

    def start(self) -> PrometheusServer:
        self.port = self.port or free_port()
        argv = [
            PROMETHEUS,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--log.level=warn",
        ]
        if self.web_config is not None:
            web = self.workdir / "web.yml"
            web.write_text(yaml.safe_dump(self.web_config), encoding="utf-8")
            argv.append(f"--web.config.file={web}")
        if self.route_prefix:
            argv += [f"--web.external-url=http://{self.address}{self.route_prefix}", f"--web.route-prefix={self.route_prefix}"]
        self.process = ManagedProcess(argv, log_path=self.workdir / "prometheus.log")
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        # /-/ready answers 503 until the server is ready; wait_http waits for a non-5xx answer.
        try:
            wait_http(f"{self.url}/-/ready", timeout=self.ready_timeout, proc=self.process.proc)
        except RuntimeError as err:
            raise RuntimeError(f"{self.name}: {err}\n{self.log_text()[-3000:]}") from None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_text(self) -> str:
        return self.process.log_text() if self.process else ""

    def api(self, path: str, **params) -> dict:
        """GET /api/v1/<path> with params (lists become repeated keys); returns ``data``."""
        query = urllib.parse.urlencode(params, doseq=True)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"{url}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query; returns the result vector."""
        return self.api("query", query=expr)["result"]

    def series(self, *match: str) -> list[dict]:
        return self.api("series", **{"match[]": list(match)})

    def targets(self) -> list[dict]:
        return self.api("targets")["activeTargets"]

    def wait_for(self, expr: str, timeout: float = 30.0, interval: float = 0.5) -> list[dict]:
        """Poll ``expr`` until it returns a non-empty vector (bounded); fail with targets and logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(interval)
        raise AssertionError(
            f"{self.name}: {expr!r} still empty after {timeout}s\ntargets: {json.dumps(self.targets(), indent=1)[:3000]}\n"
            f"log: {self.log_text()[-2000:]}"
        )

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LocalExporter:
    """In-process exporter (prometheus_client) on a free loopback port.

    ``series`` maps a namespace to model names; each (namespace, model) pair gets
    ``<metric>{namespace=..., model=...}`` gauge set to 1 and a counter.
    """

    def __init__(self, series: dict[str, list[str]] | None = None, metric: str = "nga4m_test_model_up"):
        from prometheus_client import CollectorRegistry, Counter, Gauge  # imported lazily: optional for other helpers

        self.metric = metric
        self.registry = CollectorRegistry()
        gauge = Gauge(metric, "Test series with a namespace label", ["namespace", "model"], registry=self.registry)
        counter = Counter(metric.removesuffix("_up") + "_requests", "Test counter", ["namespace", "model"], registry=self.registry)
        for namespace, models in (series or {"models": ["iris"], "other": ["noise"]}).items():
            for model in models:
                gauge.labels(namespace=namespace, model=model).set(1)
                counter.labels(namespace=namespace, model=model).inc(3)
        self.port: int | None = None
        self._server = None
        self._thread = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalExporter:
        from prometheus_client import start_http_server

        self.port = free_port()
        self._server, self._thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        wait_http(f"http://{self.address}/metrics", timeout=10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalExporter:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def scrape_config_for(exporter: LocalExporter, job: str = "exporter", interval: str = "1s", external_labels: dict | None = None) -> dict:
    """A Prometheus config scraping ``exporter`` with honor_labels (keeps its ``namespace`` label)."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": job,
                "honor_labels": True,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": [exporter.address]}],
            }
        ],
    }
    if external_labels:
        config["global"]["external_labels"] = external_labels
    return config
