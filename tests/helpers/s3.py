"""A real S3 server on loopback for tests: MinIO, and a fault proxy.

``S3Server`` starts the MinIO server the bed builds (``tools/gobuild``, pinned in
tools/pins.env) on a free 127.0.0.1 port with generated root credentials and a data
directory of its own, waits until it answers and hands out minio clients.

``FaultProxy`` is a test double in front of any HTTP server: it forwards every
request unchanged, except requests matching ``fail_when(method, path)``, for which
it drops the connection without answering (what a crashed or unreachable server
does mid-run). Toggle ``fail_when`` between runs; ``requests`` records
``(method, path)`` of everything it saw.

Usage::

    with S3Server(tmp_path) as s3:
        client = s3.client()
        client.make_bucket("models")
"""

from __future__ import annotations

import http.client
import secrets
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers.kubebed import bin_dir
from tests.helpers.procs import ManagedProcess, free_port, wait_http

REGION = "us-east-1"


class S3Server:
    """MinIO on 127.0.0.1:<free port> (S3 API at ``url``; ``endpoint`` is host:port), data in a temporary dir."""

    def __init__(self, workdir=None, port: int | None = None, access_key: str | None = None, secret_key: str | None = None,
                 region: str = REGION, data=None):
        """``access_key``/``secret_key``: the root credentials (generated when not given); ``data``: a data directory
        of the caller's, kept by ``stop()`` so a later server opens the same objects (else a temporary one, removed)."""
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.endpoint = f"{self.host}:{self.port}"
        self.url = f"http://{self.endpoint}"
        self.access_key = access_key or "test-" + secrets.token_hex(4)
        self.secret_key = secret_key or secrets.token_urlsafe(18)
        self.region = region
        self.keep_data = data is not None
        self.data = Path(data) if data is not None else Path(tempfile.mkdtemp(prefix="s3-", dir=workdir))
        self.data.mkdir(parents=True, exist_ok=True)
        log = Path(workdir) / f"minio-{self.port}.log" if workdir else None
        argv = [bin_dir() / "minio", "server", self.data, "--address", self.endpoint,
                "--console-address", f"127.0.0.1:{free_port()}", "--quiet"]
        self.proc = ManagedProcess(argv, log_path=log, env={
            "MINIO_ROOT_USER": self.access_key, "MINIO_ROOT_PASSWORD": self.secret_key, "MINIO_BROWSER": "off",
            "MINIO_REGION": self.region, "MINIO_UPDATE": "off", "MINIO_CI_CD": "1"})
        try:
            wait_http(f"{self.url}/minio/health/ready", timeout=60, proc=self.proc.proc)
        except Exception:
            self.stop()
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
        """Drop every bucket and object."""
        client = self.client()
        for bucket in client.list_buckets():
            for obj in client.list_objects(bucket.name, recursive=True):
                client.remove_object(bucket.name, obj.object_name)
            client.remove_bucket(bucket.name)

    def stop(self) -> None:
        self.proc.stop()
        if not self.keep_data:
            shutil.rmtree(self.data, ignore_errors=True)

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
