"""Fixtures for the Kubernetes API test double's own tests."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.doubles.kubeapi_double import start_clusters


class Api:
    """Minimal HTTP client for one emulated cluster (keep-alive connection)."""

    def __init__(self, server: str):
        parts = urlsplit(server)
        self.host, self.port = parts.hostname, parts.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, method, path, body=None, ctype="application/json", headers=None):
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            if isinstance(data, str):
                data = data.encode()
        hdrs = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = ctype
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            resp = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.conn.request(method, path, body=data, headers=hdrs)
            resp = self.conn.getresponse()
        raw = resp.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode()
        return resp.status, payload, resp

    def get(self, path, **kw):
        return self.call("GET", path, **kw)[:2]

    def post(self, path, body, **kw):
        return self.call("POST", path, body, **kw)[:2]

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)[:2]

    def patch(self, path, body, ctype="application/merge-patch+json", **kw):
        return self.call("PATCH", path, body, ctype=ctype, **kw)[:2]

    def apply(self, path, body, manager="test", force=False, dry_run=False):
        q = f"?fieldManager={manager}" + ("&force=true" if force else "") + ("&dryRun=All" if dry_run else "")
        return self.call("PATCH", path + q, body, ctype="application/apply-patch+yaml")[:2]

    def delete(self, path, body=None, **kw):
        return self.call("DELETE", path, body, **kw)[:2]

    def close(self):
        self.conn.close()


@pytest.fixture(scope="module")
def kubeapi(tmp_path_factory):
    """Two emulated clusters (pc, sc1) in-process for the module; always stopped."""
    handle = start_clusters(["pc", "sc1"], tmp_path_factory.mktemp("kubeapi"))
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def kpc(kubeapi):
    """A fresh (reset) pc cluster and an HTTP client for it."""
    kubeapi["pc"].store.reset()
    api = Api(kubeapi["pc"].server)
    try:
        yield api
    finally:
        api.close()
