"""Unit tests for module_utils/sa_kubeconfig.py (deployer kubeconfigs from bound tokens)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from types import SimpleNamespace

import pytest
import yaml

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.sa_kubeconfig import (
    build_kubeconfig,
    ensure_kubeconfig,
    inspect_existing,
    jwt_expiry,
    load_cluster,
)

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
CLUSTER = {"server": "https://sc1.example.com:6443", "certificate_authority_data": "Q0E=", "insecure_skip_tls_verify": False,
           "tls_server_name": None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def token(exp: dt.datetime, sub="system:serviceaccount:models:model-deployer") -> str:
    return ".".join([b64url(b'{"alg":"RS256"}'), b64url(json.dumps({"exp": int(exp.timestamp()), "sub": sub}).encode()), "sig"])


class FakeApi:
    def __init__(self, exp: dt.datetime):
        self.calls = []
        self.exp = exp

    def create_namespaced_service_account_token(self, name, namespace, body):
        self.calls.append((name, namespace, body.spec.expiration_seconds))
        return SimpleNamespace(status=SimpleNamespace(token=token(self.exp), expiration_timestamp=self.exp))


def test_jwt_expiry_reads_exp_and_tolerates_garbage():
    assert jwt_expiry(token(NOW)) == NOW
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.%%%.c") is None


def test_new_kubeconfig_when_nothing_stored():
    api = FakeApi(NOW + dt.timedelta(days=90))
    result = ensure_kubeconfig(api, "sc1", CLUSTER, "models", "model-deployer", existing=None, now=NOW)
    assert result["changed"] and result["renewed"]
    assert api.calls == [("model-deployer", "models", 7776000)]
    doc = yaml.safe_load(result["kubeconfig"])
    assert doc["clusters"][0]["cluster"] == {"server": CLUSTER["server"], "certificate-authority-data": "Q0E="}
    assert doc["contexts"][0]["context"] == {"cluster": "sc1", "namespace": "models", "user": "model-deployer@sc1"}
    assert result["expiration_timestamp"] == "2027-01-30T00:00:00Z"


def test_valid_stored_kubeconfig_is_kept_without_a_token_request():
    text = build_kubeconfig("sc1", CLUSTER, "models", "model-deployer", token(NOW + dt.timedelta(days=30)), "x")
    api = FakeApi(NOW)
    result = ensure_kubeconfig(api, "sc1", CLUSTER, "models", "model-deployer", existing=text, now=NOW)
    assert not result["changed"] and result["kubeconfig"] == text and api.calls == []


@pytest.mark.parametrize("change", [
    {"days": 3},                                  # expires within the 7-day threshold
    {"days": 30, "server": "https://other:6443"},  # another API server
    {"days": 30, "namespace": "default"},         # another namespace
])
def test_stored_kubeconfig_is_renewed(change):
    cluster = dict(CLUSTER, server=change.get("server", CLUSTER["server"]))
    text = build_kubeconfig("sc1", cluster, change.get("namespace", "models"), "model-deployer",
                            token(NOW + dt.timedelta(days=change["days"])), "x")
    api = FakeApi(NOW + dt.timedelta(days=90))
    result = ensure_kubeconfig(api, "sc1", CLUSTER, "models", "model-deployer", existing=text, now=NOW)
    assert result["changed"] and len(api.calls) == 1 and result["kubeconfig"] != text


def test_check_mode_requests_nothing():
    api = FakeApi(NOW)
    result = ensure_kubeconfig(api, "sc1", CLUSTER, "models", "model-deployer", existing="garbage: [", check_mode=True, now=NOW)
    assert result["changed"] and result["kubeconfig"] is None and api.calls == []


def test_inspect_existing_uses_the_extension_when_the_token_is_opaque():
    text = build_kubeconfig("sc1", CLUSTER, "models", "sa", "opaque-token", "2027-01-01T00:00:00Z")
    tok, exp = inspect_existing(text, "sc1", CLUSTER, "models")
    assert tok == "opaque-token" and exp == dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)


def test_load_cluster(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"PEM")
    cfg = tmp_path / "config"
    cfg.write_text(yaml.safe_dump({
        "current-context": "a",
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://x:6443", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
    }))
    assert load_cluster(str(cfg))["certificate_authority_data"] == base64.b64encode(b"PEM").decode()
    with pytest.raises(NGA4MError, match="context 'b' is not in"):
        load_cluster(str(cfg), "b")
    with pytest.raises(NGA4MError, match="does not exist"):
        load_cluster(str(tmp_path / "missing"))
