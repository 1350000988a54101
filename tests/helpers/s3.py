"""A real S3 server on loopback for tests: ``moto_server`` (moto[server]) and a fault proxy.

``MotoS3`` starts ``moto_server`` on a free 127.0.0.1 port as a ``ManagedProcess``,
waits until it answers and hands out minio clients. Its state lives in memory
and is lost when it stops.

``FaultProxy`` is a test double in front of any HTTP server: it forwards every
request unchanged, except requests matching ``fail_when(method, path)``, for which
it drops the connection without answering (what a crashed or unreachable server
does mid-run). Toggle ``fail_when`` between runs; ``requests`` records
``(method, path)`` of everything it saw.

Usage::

    with MotoS3(tmp_path) as s3:
        client = s3.client()
        client.make_bucket("models")
"""

from __future__ import annotations

import http.client
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers.procs import ManagedProcess, free_port, wait_http

ACCESS_KEY = "nga4m-test-access"
SECRET_KEY = "nga4m-test-secret-key"
REGION = "us-east-1"


class MotoS3:
    """``moto_server`` on 127.0.0.1:<free port> (S3 API at ``url``; ``endpoint`` is host:port)."""

    def __init__(self, workdir=None, port: int | None = None):
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.endpoint = f"{self.host}:{self.port}"
        self.url = f"http://{self.endpoint}"
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        log = Path(workdir) / f"moto-{self.port}.log" if workdir else None
        exe = Path(sys.executable).parent / "moto_server"
        argv = [exe, "-H", self.host, "-p", str(self.port)] if exe.exists() else [
            sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)
        ]
        self.proc = ManagedProcess(argv, log_path=log, env={"MOTO_ALLOW_NONEXISTENT_REGION": "true"})
        try:
            wait_http(f"{self.url}/moto-api/", timeout=60, proc=self.proc.proc)
        except Exception:
            self.proc.stop()
            raise

    def client(self, endpoint: str | None = None):
        """A minio client for this server (or for ``endpoint``, e.g. a proxy in front of it)."""
        from minio import Minio  # noqa: PLC0415

        return Minio(endpoint or self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False, region=self.region)

    def options(self, bucket: str, endpoint: str | None = None, **extra) -> dict:
        """Connection options in the ``OBJECT_STORAGE_ARGSPEC`` shape."""
        opts = {
            "endpoint": endpoint or self.endpoint,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "secure": False,
            "region": self.region,
            "bucket": bucket,
        }
        opts.update(extra)
        return opts

    def keys(self, bucket: str, prefix: str | None = None) -> list[str]:
        client = self.client()
        if not client.bucket_exists(bucket):
            return []
        return sorted(o.object_name for o in client.list_objects(bucket, prefix=prefix, recursive=True))

    def reset(self) -> None:
        """Drop every bucket and object (moto's reset API)."""
        import urllib.request  # noqa: PLC0415

        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - loopback
            pass

    def stop(self) -> None:
        self.proc.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


class FaultProxy:
    """Test double: an HTTP forwarder on loopback that drops chosen requests (see module docstring)."""

    def __init__(self, upstream_url: str, fail_when=None):
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname, parts.port or 80)
        self.fail_when = fail_when or (lambda method, path: False)
        self.requests: list[tuple[str, str]] = []
        self.dropped: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                method, path = self.command, self.path
                proxy.requests.append((method, path))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.fail_when(method, path):
                    proxy.dropped.append((method, path))
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                    conn.request(method, path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response_only(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() not in _HOP_HEADERS and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.endpoint}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def drop_put_of(suffix: str):
    """A ``fail_when`` predicate: drop PUT requests whose path (without query) ends with ``suffix``."""

    def predicate(method: str, path: str) -> bool:
        return method == "PUT" and path.split("?", 1)[0].endswith(suffix)

    return predicate
