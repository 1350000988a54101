"""TEST DOUBLE: a tiny Open Inference (KServe v2) HTTP endpoint in front of onnxruntime.

It stands in for Triton behind a KServe InferenceService, which cannot run on the
CI machines: the model itself is real (onnxruntime runs the ONNX file), only the
server is a stand-in. Standard library HTTP server in a thread on 127.0.0.1:

- ``GET /v2/health/ready``, ``GET /v2/models/<name>/ready`` -> 200 when <name> is served
- ``POST /v2/models/<name>/infer`` with ``{"inputs": [{"name", "shape", "datatype", "data"}]}``
  -> ``{"model_name", "outputs": [{"name", "shape", "datatype", "data"}]}`` (flat row-major data)

``hosts`` records the Host header of every infer request (an ingress routes on it).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

_NP = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
_V2 = {np.dtype(v): k for k, v in _NP.items()}


class V2ServerDouble:
    def __init__(self, model_name: str, model_path):
        import onnxruntime as ort  # noqa: PLC0415 - heavy

        self.model_name = model_name
        self.session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        self.hosts: list[str] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                match = re.fullmatch(r"/v2/models/([^/]+)/ready", self.path)
                if self.path == "/v2/health/ready" or (match and match.group(1) == double.model_name):
                    self._send(200, {"ready": True})
                else:
                    self._send(404, {"error": f"unknown path {self.path}"})

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                match = re.fullmatch(r"/v2/models/([^/]+)(?:/versions/[0-9]+)?/infer", self.path)
                if not match or match.group(1) != double.model_name:
                    self._send(404, {"error": f"model not found: {self.path}"})
                    return
                double.hosts.append(self.headers.get("Host", ""))
                try:
                    self._send(200, double.infer(json.loads(raw)))
                except (KeyError, ValueError, TypeError) as exc:
                    self._send(400, {"error": str(exc)})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="v2-server-double", daemon=True)

    def infer(self, request: dict) -> dict:
        feed = {}
        for tensor in request["inputs"]:
            dtype = _NP[tensor["datatype"]]
            feed[tensor["name"]] = np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])
        names = [o.name for o in self.session.get_outputs()]
        wanted = [o["name"] for o in request.get("outputs", [])] or names
        values = dict(zip(names, self.session.run(None, feed)))
        return {
            "model_name": self.model_name,
            "outputs": [
                {"name": n, "shape": list(values[n].shape), "datatype": _V2[values[n].dtype], "data": values[n].reshape(-1).tolist()}
                for n in wanted
            ],
        }

    def start(self) -> V2ServerDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
