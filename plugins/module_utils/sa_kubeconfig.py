# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Least-privilege kubeconfigs from ServiceAccount tokens (logic of ``service_account_kubeconfig``).

Pure functions (PyYAML + stdlib) plus :func:`request_token`, which takes any
object with a ``create_namespaced_service_account_token(name, namespace, body)``
method (the ``kubernetes`` client's ``CoreV1Api``) so tests can pass a fake.
"""

import base64
import datetime
import json
import os

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError

EXPIRY_EXTENSION = "nga4m.io/token-expiration"


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def parse_timestamp(text):
    """RFC 3339 timestamp -> aware datetime (or None)."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def jwt_expiry(token):
    """The ``exp`` claim of a JWT as an aware datetime, or None when it cannot be read."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
        return datetime.datetime.fromtimestamp(int(claims["exp"]), tz=datetime.timezone.utc)
    except (IndexError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _require_yaml():
    if yaml is None:  # pragma: no cover
        raise NGA4MError("PyYAML is not installed on the Ansible controller; install it with 'pip install pyyaml'")


def load_cluster(kubeconfig_path, context=None):
    """Server, CA data (base64) and TLS flags of ``context`` in a kubeconfig file."""
    _require_yaml()
    if not kubeconfig_path or not os.path.isfile(kubeconfig_path):
        raise NGA4MError(f"kubeconfig {kubeconfig_path!r} does not exist; give the SC's admin kubeconfig (inventory variable kubeconfig)")
    with open(kubeconfig_path, encoding="utf-8") as handle:
        doc = yaml.safe_load(handle) or {}
    name = context or doc.get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in doc.get("contexts") or []}
    if name not in contexts:
        raise NGA4MError(f"context {name!r} is not in {kubeconfig_path}; known: {', '.join(sorted(map(str, contexts)))}")
    clusters = {c.get("name"): c.get("cluster") or {} for c in doc.get("clusters") or []}
    cluster = clusters.get(contexts[name].get("cluster"))
    if not cluster or not cluster.get("server"):
        raise NGA4MError(f"context {name!r} in {kubeconfig_path} points at a cluster without server")
    ca_data = cluster.get("certificate-authority-data")
    ca_file = cluster.get("certificate-authority")
    if not ca_data and ca_file:
        if not os.path.isabs(ca_file):
            ca_file = os.path.join(os.path.dirname(kubeconfig_path), ca_file)
        with open(ca_file, "rb") as handle:
            ca_data = base64.b64encode(handle.read()).decode("ascii")
    return {"server": cluster["server"], "certificate_authority_data": ca_data or None,
            "insecure_skip_tls_verify": bool(cluster.get("insecure-skip-tls-verify")),
            "tls_server_name": cluster.get("tls-server-name")}


def build_kubeconfig(cluster_name, cluster, namespace, service_account, token, expiration):
    """kubeconfig text for ``service_account`` (deterministic: same input, same text)."""
    _require_yaml()
    entry = {"server": cluster["server"]}
    if cluster.get("certificate_authority_data"):
        entry["certificate-authority-data"] = cluster["certificate_authority_data"]
    if cluster.get("insecure_skip_tls_verify"):
        entry["insecure-skip-tls-verify"] = True
    if cluster.get("tls_server_name"):
        entry["tls-server-name"] = cluster["tls_server_name"]
    user = f"{service_account}@{cluster_name}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": cluster_name,
        "clusters": [{"name": cluster_name, "cluster": entry}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "namespace": namespace, "user": user}}],
        "users": [{"name": user, "user": {"token": token}}],
        "preferences": {},
        "extensions": [{"name": EXPIRY_EXTENSION, "extension": {"expirationTimestamp": expiration}}],
    }
    return "# Least-privilege deployer kubeconfig written by nga4m.platform (ServiceAccount token).\n" + yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=False)


def inspect_existing(text, cluster_name, cluster, namespace):
    """What a stored kubeconfig holds: (token, expiry) when it targets the same cluster/namespace, else (None, None)."""
    if not text:
        return None, None
    _require_yaml()
    try:
        doc = yaml.safe_load(text) or {}
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == doc["current-context"])
        entry = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
    except (yaml.YAMLError, KeyError, StopIteration, TypeError, AttributeError):
        return None, None
    if ctx.get("namespace") != namespace or doc.get("current-context") != cluster_name:
        return None, None
    if entry.get("server") != cluster["server"] or entry.get("certificate-authority-data") != cluster.get("certificate_authority_data"):
        return None, None
    token = user.get("token")
    if not token:
        return None, None
    expiry = jwt_expiry(token)
    if expiry is None:
        for ext in doc.get("extensions") or []:
            if isinstance(ext, dict) and ext.get("name") == EXPIRY_EXTENSION:
                expiry = parse_timestamp((ext.get("extension") or {}).get("expirationTimestamp"))
    return token, expiry


def request_token(api, namespace, service_account, expiration_seconds, audiences=None):
    """POST a TokenRequest; return (token, expirationTimestamp text)."""
    from kubernetes import client as k8s_client  # pylint: disable=import-outside-toplevel
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    spec = k8s_client.V1TokenRequestSpec(audiences=audiences or [], expiration_seconds=expiration_seconds)
    body = k8s_client.AuthenticationV1TokenRequest(spec=spec)
    try:
        resp = api.create_namespaced_service_account_token(service_account, namespace, body)
    except ApiException as exc:
        if exc.status == 404:
            raise NGA4MError(f"ServiceAccount {namespace}/{service_account} does not exist; create it before requesting a token") from exc
        if exc.status == 403:
            raise NGA4MError(f"not allowed to create tokens for {namespace}/{service_account} (serviceaccounts/token create); "
                             "use an admin kubeconfig for this cluster") from exc
        raise NGA4MError(f"TokenRequest for {namespace}/{service_account} failed: {exc.status} {exc.reason}") from exc
    expiry = resp.status.expiration_timestamp
    if isinstance(expiry, datetime.datetime):
        expiry = expiry.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return resp.status.token, expiry


def ensure_kubeconfig(api, cluster_name, cluster, namespace, service_account, existing=None,
                      expiration_seconds=7776000, renew_before_seconds=604800, audiences=None, check_mode=False, now=None):
    """Keep ``existing`` while its token is valid for more than ``renew_before_seconds``; else issue a new one."""
    now = now or _utcnow()
    token, expiry = inspect_existing(existing, cluster_name, cluster, namespace)
    if token and expiry and (expiry - now).total_seconds() > renew_before_seconds:
        return {"changed": False, "renewed": False, "kubeconfig": existing,
                "expiration_timestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "server": cluster["server"]}
    reason = "no stored kubeconfig for this cluster" if not token else (
        "stored token expiry unknown" if not expiry else f"stored token expires {expiry.isoformat()}")
    if check_mode:
        return {"changed": True, "renewed": True, "kubeconfig": None, "expiration_timestamp": None,
                "server": cluster["server"], "reason": reason}
    new_token, new_expiry = request_token(api, namespace, service_account, expiration_seconds, audiences)
    text = build_kubeconfig(cluster_name, cluster, namespace, service_account, new_token, new_expiry)
    return {"changed": True, "renewed": True, "kubeconfig": text, "expiration_timestamp": new_expiry,
            "server": cluster["server"], "reason": reason}
