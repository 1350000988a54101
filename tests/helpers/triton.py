"""The real Triton Inference Server for tests and benchmarks.

``TritonServer`` runs ``examples/iris/serve_triton.py``: the ``tritonserver`` that PyPI's
``nvidia-pytriton`` wheel ships (installed by ``tools/tritonserver``, pinned in
``tools/pins.env``) with NGA4M's onnxruntime Python-based backend, over a repository in a
directory or on S3 (MinIO), on free loopback ports. Triton itself parses config.pbtxt, polls
the repository, serves v2 REST/gRPC and exports ``nv_inference_*`` on its metrics port.
A missing server install fails loudly, naming the command that installs it.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers.procs import ManagedProcess, free_port, wait_http

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "examples" / "iris" / "serve_triton.py"


class TritonServer:
    """tritonserver over ``local_path`` or ``s3`` (a tests.helpers.s3.S3Server) + ``bucket``; ``url`` is the v2 REST base."""

    def __init__(self, workdir, *, local_path=None, s3=None, bucket: str = "nga4m", prefix: str = "models/triton",
                 poll_secs: int = 2, env: dict | None = None, name: str = "triton"):
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grpc = f"127.0.0.1:{self.grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        argv = [sys.executable, SERVE, "--address", "127.0.0.1", "--http-port", self.http_port, "--grpc-port", self.grpc_port,
                "--metrics-port", self.metrics_port, "--poll-secs", poll_secs, "--prefix", prefix]
        run_env = dict(env or {})
        if local_path is not None:
            argv += ["--local-path", local_path]
        else:
            argv += ["--endpoint", s3.endpoint, "--bucket", bucket]
            run_env.update({"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                            "AWS_DEFAULT_REGION": s3.region})
        self.process = ManagedProcess([str(a) for a in argv], log_path=Path(workdir) / f"{name}-{self.http_port}.log", env=run_env)
        try:
            wait_http(f"{self.url}/v2/health/ready", timeout=120, proc=self.process.proc)
        except BaseException as exc:
            log = self.process.log_text()[-4000:]
            self.stop()
            raise RuntimeError(f"tritonserver did not become ready: {exc}\n--- tritonserver log ---\n{log}") from exc

    def metrics(self) -> str:
        """Triton's Prometheus exposition text."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as resp:
            return resp.read().decode()

    def metric(self, name: str, **labels) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0.0 when none)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _sep, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def log_text(self) -> str:
        return self.process.log_text()

    def stop(self) -> None:
        self.process.stop(timeout=15)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class HostRecordingProxy:
    """OURS, a probe in the place of an ingress controller: forwards every request to ``target`` (e.g. Triton's
    REST port) unchanged and records the Host header it came with (what an ingress routes on). Not an emulator
    of any ingress: no routing, no TLS; only ``url`` and ``hosts``."""

    def __init__(self, target: str):
        import threading  # noqa: PLC0415
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

        self.hosts: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                proxy.hosts.append(self.headers.get("Host", ""))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
                request = urllib.request.Request(target.rstrip("/") + self.path, data=body, headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=30) as resp:
                        status, payload, kind = resp.status, resp.read(), resp.headers.get("Content-Type", "")
                except urllib.error.HTTPError as exc:
                    status, payload, kind = exc.code, exc.read(), exc.headers.get("Content-Type", "")
                self.send_response(status)
                if kind:
                    self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _forward  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
