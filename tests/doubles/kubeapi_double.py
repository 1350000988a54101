#!/usr/bin/env python
"""Kubernetes API test double: an in-memory emulator of kube-apiserver.

This is a **test double**, not Kubernetes. It serves one emulated cluster per
``--cluster`` name on its own loopback port over plain HTTP, keeps objects in
memory, and implements enough of the API for ``kubernetes.core`` (k8s,
k8s_info, server-side apply, wait), the ``kubernetes`` Python client and
``kubectl`` to work: discovery (including CRD-defined kinds), CRUD, list/watch
with label and field selectors, JSON/merge/strategic-merge patch, server-side
apply with a simplified managedFields model, ``dryRun=All``, status
subresources, TokenRequest, and emulated controllers that make workloads
report ready: at once by default, or ``--rollout-seconds S`` after each
rollout starts (a model of a real controller's latency; see
``ClusterStore.rollout_pending``). See ``tests/doubles/README.md`` for the
behaviours and gaps.

CLI (runs in the foreground until SIGTERM/SIGINT)::

    .venv/bin/python tests/doubles/kubeapi_double.py --state-dir DIR \\
        --cluster pc --cluster sc1 --cluster sc2 [--host 127.0.0.1] [--rollout-seconds S]

writes ``DIR/<cluster>.kubeconfig``, then ``DIR/kubeapi.pid`` and (atomically,
last) ``DIR/clusters.json``.

Python API (in-process threads)::

    from tests.doubles.kubeapi_double import start_clusters
    handle = start_clusters(["pc"], state_dir)
    try:
        handle["pc"].kubeconfig          # path of the kubeconfig
        handle["pc"].store.objects()     # every object, for assertions
    finally:
        handle.stop()

Only the standard library is required (PyYAML is used when present to read
YAML apply bodies; JSON bodies need nothing).
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as _dt
import hashlib
import hmac
import json
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

try:  # optional: only needed for YAML (not JSON) server-side-apply bodies
    import yaml  # type: ignore
except ImportError:  # pragma: no cover - the venv has PyYAML
    yaml = None

SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "kubeapi-double",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}

#: watch events kept per cluster for resourceVersion-based watch resumption
EVENT_HISTORY = 2000
#: the single emulated node
NODE_NAME = "kubeapi-double-node"
SEED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

SCALE_META = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
STATUS_VERBS = ("get", "patch", "update")


# --------------------------------------------------------------------------
# resource types
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ResType:
    """One served resource (a plural in a group), possibly in several versions."""

    group: str
    versions: tuple
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple = ()
    status: bool = False  # has a status subresource
    scale: bool = False  # has a scale subresource
    verbs: tuple = ALL_VERBS
    categories: tuple = ()
    crd: bool = False
    stored: bool = True  # False for virtual create-only kinds (reviews)
    generation: bool = False  # metadata.generation maintained

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def preferred_version(self) -> str:
        return sorted(self.versions, key=version_priority)[0]

    def gr(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _rt(group, version, kind, plural, namespaced, short=(), **kw):
    return ResType(group, (version,), kind, plural, kind.lower(), namespaced, tuple(short), **kw)


BUILTIN_TYPES = (
    # core/v1
    _rt("", "v1", "Namespace", "namespaces", False, ("ns",), status=True),
    _rt("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _rt("", "v1", "Secret", "secrets", True),
    _rt("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    _rt("", "v1", "Service", "services", True, ("svc",), status=True, categories=("all",)),
    _rt("", "v1", "Pod", "pods", True, ("po",), status=True, categories=("all",)),
    _rt("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), status=True),
    _rt("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), status=True),
    _rt("", "v1", "Endpoints", "endpoints", True, ("ep",)),
    _rt("", "v1", "Event", "events", True, ("ev",)),
    _rt("", "v1", "Node", "nodes", False, ("no",), status=True),
    # apps/v1
    _rt("apps", "v1", "Deployment", "deployments", True, ("deploy",), status=True, scale=True,
        categories=("all",), generation=True),
    _rt("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), status=True, scale=True,
        categories=("all",), generation=True),
    _rt("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), status=True, categories=("all",), generation=True),
    _rt("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), status=True, scale=True,
        categories=("all",), generation=True),
    # batch/v1
    _rt("batch", "v1", "Job", "jobs", True, status=True, categories=("all",), generation=True),
    _rt("batch", "v1", "CronJob", "cronjobs", True, ("cj",), status=True, categories=("all",), generation=True),
    # autoscaling/v2
    _rt("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",),
        status=True, categories=("all",), generation=True),
    # rbac
    _rt("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _rt("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    # apiextensions
    _rt("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
        ("crd", "crds"), status=True, categories=("api-extensions",), generation=True),
    # admissionregistration
    _rt("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations", False, categories=("api-extensions",), generation=True),
    _rt("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations", False, categories=("api-extensions",), generation=True),
    # networking
    _rt("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), status=True, generation=True),
    _rt("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    _rt("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",), generation=True),
    # policy
    _rt("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), status=True,
        generation=True),
    # storage
    _rt("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    # apiregistration
    _rt("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, status=True,
        categories=("api-extensions",)),
    # coordination
    _rt("coordination.k8s.io", "v1", "Lease", "leases", True),
    # authorization (virtual, create only)
    _rt("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
        verbs=CREATE_ONLY, stored=False),
)


def version_priority(version: str):
    """Sort key: Kubernetes version priority (GA > beta > alpha, then newest)."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, version)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict:
        out = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def not_found(rt: ResType | None, name: str, what: str | None = None) -> ApiError:
    gr = what or (rt.gr() if rt else "resource")
    details = {"name": name, "kind": rt.plural if rt else gr}
    if rt and rt.group:
        details["group"] = rt.group
    return ApiError(404, "NotFound", f'{gr} "{name}" not found', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(rt: ResType, name: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{rt.kind}.{rt.group or "core"} "{name}" is invalid: {message}',
        {"name": name, "group": rt.group, "kind": rt.kind, "causes": [{"reason": "FieldValueInvalid", "message": message}]},
    )


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def now_ts() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_after(seconds: int) -> str:
    return (_dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def short_hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def dget(obj, *path, default=None):
    cur = obj
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return default
        cur = cur[key]
    return cur


def strip_nulls(value):
    """Drop ``None`` values (server-side apply treats them as unset)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value if v is not None]
    return value


SYSTEM_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
               "deletionTimestamp", "deletionGracePeriodSeconds")


def content_equal(a: dict, b: dict) -> bool:
    """Objects equal apart from resourceVersion and managedFields."""

    def strip(o):
        o = dict(o)
        meta = dict(o.get("metadata") or {})
        meta.pop("resourceVersion", None)
        meta.pop("managedFields", None)
        o["metadata"] = meta
        return o

    return strip(a) == strip(b)


def spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


# --------------------------------------------------------------------------
# list merge keys (strategic merge patch and server-side apply)
# --------------------------------------------------------------------------

MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "hostAliases": "ip",
    "ownerReferences": "uid",
}


def merge_key(field_name: str, items) -> str | None:
    """The key a list called ``field_name`` is merged by, or None (atomic list)."""
    if not isinstance(items, list) or not items:
        return None
    entries = [i for i in items if not (isinstance(i, dict) and set(i) == {"$patch"})]
    if not entries or not all(isinstance(i, dict) for i in entries):
        return None
    if field_name == "ports":
        candidates = ("containerPort", "port")
    elif field_name in MERGE_KEYS:
        candidates = (MERGE_KEYS[field_name],)
    else:
        candidates = ()
    for key in candidates:
        if all(key in i for i in entries):
            return key
    return None


# --------------------------------------------------------------------------
# patches
# --------------------------------------------------------------------------


def json_merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = json_merge_patch(out.get(key), value)
    return out


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def strategic_merge_patch(orig: dict, patch: dict) -> dict | None:
    """Strategic merge patch for the common keyed lists (see MERGE_KEYS)."""
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives(patch)
    if directive == "delete":
        return None
    out = copy.deepcopy(orig) if isinstance(orig, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            target = key.split("/", 1)[1]
            if isinstance(out.get(target), list):
                out[target] = [v for v in out[target] if v not in (value or [])]
            continue
        if value is None:
            out.pop(key, None)
            continue
        cur = out.get(key)
        if isinstance(value, dict) and isinstance(cur, dict):
            merged = strategic_merge_patch(cur, value)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list) and isinstance(cur, list) and merge_key(key, value):
            out[key] = _smp_list(cur, value, merge_key(key, value))
        else:
            out[key] = _strip_directives(value)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_list(cur: list, patch_items: list, key: str) -> list:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch_items):
        return [_strip_directives(i) for i in patch_items if not (isinstance(i, dict) and i.get("$patch"))]
    result = copy.deepcopy(cur)
    for item in patch_items:
        if not isinstance(item, dict) or set(item) == {"$patch"}:
            continue
        idx = next((n for n, c in enumerate(result) if isinstance(c, dict) and c.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del result[idx]
            continue
        if idx is None:
            result.append(_strip_directives(item))
        else:
            result[idx] = strategic_merge_patch(result[idx], item)
    return result


def _pointer(path: str) -> list:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _jp_parent(doc, parts):
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[int(p)]
        else:
            cur = cur[p]
    return cur


def json_patch(doc, ops: list):
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise bad_request("json patch body must be a list of operations")
    for op in ops:
        try:
            kind = op["op"]
            parts = _pointer(op["path"])

            def get(ps):
                cur = doc
                for p in ps:
                    cur = cur[int(p)] if isinstance(cur, list) else cur[p]
                return cur

            def remove(ps):
                parent = _jp_parent(doc, ps)
                if isinstance(parent, list):
                    return parent.pop(int(ps[-1]))
                return parent.pop(ps[-1])

            def add(ps, value):
                nonlocal doc
                if not ps:
                    doc = value
                    return
                parent = _jp_parent(doc, ps)
                if isinstance(parent, list):
                    if ps[-1] == "-":
                        parent.append(value)
                    else:
                        parent.insert(int(ps[-1]), value)
                else:
                    parent[ps[-1]] = value

            if kind == "add":
                add(parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(parts)
            elif kind == "replace":
                if parts:
                    get(parts)  # must exist
                    remove(parts)
                add(parts, copy.deepcopy(op["value"]))
            elif kind == "move":
                value = remove(_pointer(op["from"]))
                add(parts, value)
            elif kind == "copy":
                add(parts, copy.deepcopy(get(_pointer(op["from"]))))
            elif kind == "test":
                if get(parts) != op["value"]:
                    raise ApiError(422, "Invalid", f"json patch test failed at {op['path']}")
            else:
                raise bad_request(f"unknown json patch op {kind!r}")
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                           f"json patch {op!r} failed: {exc!r}") from exc
    return doc


# --------------------------------------------------------------------------
# managed fields (simplified fieldsV1 model)
# --------------------------------------------------------------------------
#
# A field path is a tuple of elements: a str (map key) or ("k", json) for the
# element of a keyed list. Leaves are scalars, atomic lists and empty maps.

FIELD_META_EXCLUDE = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                      "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "generateName"}


def _item_key(item: dict, key: str) -> tuple:
    return ("k", json.dumps({key: item.get(key)}, sort_keys=True, separators=(",", ":")))


def field_paths(value: dict, prefix: tuple = ()) -> set:
    out = set()
    for key, sub in value.items():
        path = prefix + (key,)
        if isinstance(sub, dict) and sub:
            out |= field_paths(sub, path)
        elif isinstance(sub, list) and merge_key(key, sub):
            mk = merge_key(key, sub)
            for item in sub:
                ipath = path + (_item_key(item, mk),)
                out.add(ipath)
                out |= field_paths(item, ipath)
        else:
            out.add(path)
    return out


def object_field_paths(obj: dict, rt: ResType) -> set:
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if rt.status:
        body.pop("status", None)
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in FIELD_META_EXCLUDE}
    body.pop("metadata", None)
    if meta:
        body["metadata"] = meta
    return field_paths(body)


def paths_to_fields_v1(paths: set) -> dict:
    root: dict = {}
    for path in sorted(paths, key=lambda p: [str(e) for e in p]):
        node = root
        for elem in path:
            name = f"k:{elem[1]}" if isinstance(elem, tuple) else f"f:{elem}"
            node = node.setdefault(name, {})
        if path and isinstance(path[-1], tuple):
            node.setdefault(".", {})
    return root


def fields_v1_to_paths(fields: dict, prefix: tuple = ()) -> set:
    out = set()
    for name, sub in (fields or {}).items():
        if name == ".":
            out.add(prefix)
            continue
        if name.startswith("f:"):
            elem = name[2:]
        elif name.startswith("k:"):
            elem = ("k", json.dumps(json.loads(name[2:]), sort_keys=True, separators=(",", ":")))
        else:  # v: / i: forms are not produced by this double; treat as atomic
            elem = name
        path = prefix + (elem,)
        if sub and set(sub) != {"."}:
            out |= fields_v1_to_paths(sub, path)
            if "." in sub:
                out.add(path)
        else:
            out.add(path)
    return out


def path_value(obj, path: tuple, default=KeyError):
    cur = obj
    for elem in path:
        if isinstance(elem, tuple):
            if not isinstance(cur, list):
                return default
            want = json.loads(elem[1])
            (k, v), = want.items()
            cur = next((i for i in cur if isinstance(i, dict) and i.get(k) == v), default)
            if cur is default:
                return default
        else:
            if not isinstance(cur, dict) or elem not in cur:
                return default
            cur = cur[elem]
    return cur


def remove_path(obj: dict, path: tuple) -> None:
    """Remove the field at ``path`` and prune maps emptied by the removal."""
    parents = []
    cur = obj
    for elem in path[:-1]:
        parents.append((cur, elem))
        nxt = path_value(cur, (elem,), default=None)
        if nxt is None:
            return
        cur = nxt
    last = path[-1]
    if isinstance(last, tuple):
        if isinstance(cur, list):
            (k, v), = json.loads(last[1]).items()
            cur[:] = [i for i in cur if not (isinstance(i, dict) and i.get(k) == v)]
    elif isinstance(cur, dict):
        cur.pop(last, None)
    # prune emptied containers (never the top-level keys' parent itself)
    for parent, elem in reversed(parents):
        child = path_value(parent, (elem,), default=None)
        if child in ({}, []) and not isinstance(elem, tuple) and elem != "metadata":
            parent.pop(elem, None)
        else:
            break


def apply_merge(live, applied, field_name: str = ""):
    """Merge an applied configuration into a live object (server-side apply)."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for key, value in applied.items():
            out[key] = apply_merge(live[key], value, key) if key in live else copy.deepcopy(value)
        return out
    if isinstance(live, list) and isinstance(applied, list):
        key = merge_key(field_name, applied)
        if key and all(isinstance(i, dict) and key in i for i in live):
            result = [copy.deepcopy(i) for i in live]
            for item in applied:
                idx = next((n for n, c in enumerate(result) if c.get(key) == item.get(key)), None)
                if idx is None:
                    result.append(copy.deepcopy(item))
                else:
                    result[idx] = apply_merge(result[idx], item, "")
            return result
    return copy.deepcopy(applied)


def _fmt_path(path: tuple) -> str:
    out = ""
    for elem in path:
        out += f"[{elem[1]}]" if isinstance(elem, tuple) else f".{elem}"
    return out


def _manager_from_agent(agent: str | None) -> str:
    agent = (agent or "unknown").split("/")[0].strip()
    return agent[:128] or "unknown"


# --------------------------------------------------------------------------
# selectors
# --------------------------------------------------------------------------


def _split_top(text: str) -> list:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text: str | None):
    """Return a predicate over a labels dict (=, ==, !=, in, notin, exists, !exists)."""
    if not text:
        return lambda labels: True
    reqs = []
    for req in _split_top(text):
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", req)
        if m:
            values = {v.strip() for v in m.group(3).split(",") if v.strip() != ""}
            key, op = m.group(1), m.group(2)
            if op == "in":
                reqs.append(lambda lb, k=key, vs=values: k in lb and lb[k] in vs)
            else:
                reqs.append(lambda lb, k=key, vs=values: k not in lb or lb[k] not in vs)
            continue
        if req.startswith("!"):
            key = req[1:].strip()
            reqs.append(lambda lb, k=key: k not in lb)
            continue
        m = re.fullmatch(r"([^!=\s]+)\s*(==|!=|=)\s*(\S*)", req)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                reqs.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                reqs.append(lambda lb, k=key, v=value: lb.get(k) == v)
            continue
        if re.fullmatch(r"[A-Za-z0-9./_-]+", req):
            reqs.append(lambda lb, k=req: k in lb)
            continue
        raise bad_request(f"unable to parse requirement: {req!r}")
    return lambda labels: all(r(labels or {}) for r in reqs)


def _field_value(obj: dict, path: str) -> str:
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None):
    """Return a predicate over an object (=, ==, != on dotted paths)."""
    if not text:
        return lambda obj: True
    reqs = []
    for req in _split_top(text):
        m = re.fullmatch(r"([^!=\s]+)\s*(==|!=|=)\s*(.*)", req)
        if not m:
            raise bad_request(f"invalid field selector: {req!r}")
        path, op, value = m.groups()
        if op == "!=":
            reqs.append(lambda o, p=path, v=value: _field_value(o, p) != v)
        else:
            reqs.append(lambda o, p=path, v=value: _field_value(o, p) == v)
    return lambda obj: all(r(obj) for r in reqs)


# --------------------------------------------------------------------------
# emulated controllers (defaults and status)
# --------------------------------------------------------------------------


def _cond(ctype: str, ts: str, reason: str, message: str = "", status: str = "True", update: bool = False) -> dict:
    out = {"type": ctype, "status": status, "lastTransitionTime": ts, "reason": reason, "message": message}
    if update:
        out["lastUpdateTime"] = ts
    return out


def _reconcile_namespace(obj, cluster, old):
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    if obj.get("status", {}).get("phase") != "Terminating":
        obj["status"] = {"phase": "Active"}


def _reconcile_secret(obj, cluster, old):
    obj.setdefault("type", "Opaque")


def _reconcile_service(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    stype = spec.setdefault("type", "ClusterIP")
    if stype != "ExternalName":
        old_ip = dget(old or {}, "spec", "clusterIP")
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_ip or cluster.allocate_ip()
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")
    for n, port in enumerate(spec.get("ports") or []):
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
            if stype in ("NodePort", "LoadBalancer") and "nodePort" not in port:
                port["nodePort"] = 30000 + (int(hashlib.md5(obj["metadata"]["name"].encode()).hexdigest(), 16)  # noqa: S324
                                            + n) % 2700
    if stype == "LoadBalancer":
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}}
    else:
        obj["status"] = {"loadBalancer": {}}


POD_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def _reconcile_pod(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("nodeName", NODE_NAME)
    ts = obj["metadata"]["creationTimestamp"]
    statuses = []
    for c in spec.get("containers") or []:
        statuses.append({"name": c.get("name"), "image": c.get("image", ""), "imageID": "", "ready": True,
                         "started": True, "restartCount": 0, "state": {"running": {"startedAt": ts}}})
    obj["status"] = {
        "phase": "Running",
        "conditions": [_cond(t, ts, "") for t in POD_CONDITIONS],
        "containerStatuses": statuses,
        "hostIP": "10.0.0.10",
        "podIP": cluster.pod_ip(obj),
        "qosClass": "BestEffort",
        "startTime": ts,
    }
    for c in obj["status"]["conditions"]:
        c.pop("reason")
        c.pop("message")


def _reconcile_pvc(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    spec.setdefault("volumeName", dget(old or {}, "spec", "volumeName") or f"pvc-{obj['metadata']['uid']}")
    status = {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"]}
    storage = dget(spec, "resources", "requests", "storage")
    if storage:
        status["capacity"] = {"storage": storage}
    obj["status"] = status


def _reconcile_pv(obj, cluster, old):
    obj["status"] = {"phase": "Bound" if dget(obj, "spec", "claimRef") else "Available"}


def _reconcile_node(obj, cluster, old):
    ts = obj["metadata"]["creationTimestamp"]
    obj["status"] = {
        "conditions": [{**_cond("Ready", ts, "KubeletReady", "kubelet is posting ready status"),
                        "lastHeartbeatTime": ts}],
        "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
        "addresses": [{"type": "InternalIP", "address": "10.0.0.10"}, {"type": "Hostname", "address": NODE_NAME}],
        "nodeInfo": {"kubeletVersion": SERVER_VERSION["gitVersion"], "architecture": "amd64",
                     "operatingSystem": "linux"},
    }


def _reconcile_deployment(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    r = spec["replicas"]
    ts = obj["metadata"]["creationTimestamp"]
    name = obj["metadata"]["name"]
    rs_name = f"{name}-{short_hash(spec.get('template'))[:10]}"
    status = {"observedGeneration": obj["metadata"].get("generation", 1)}
    if r and cluster.rollout_pending(obj, old):
        if old is None or not dget(old, "status", "availableReplicas"):
            # new pods starting: nothing available yet
            status.update(replicas=r, updatedReplicas=r, unavailableReplicas=r)
            available = _cond("Available", ts, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.",
                              status="False", update=True)
        else:
            # rolling update: one surge pod of the new ReplicaSet not ready yet, the old ones still serve
            status.update(replicas=r + 1, updatedReplicas=1, readyReplicas=r, availableReplicas=r, unavailableReplicas=1)
            available = _cond("Available", ts, "MinimumReplicasAvailable", "Deployment has minimum availability.", update=True)
        status["conditions"] = [available, _cond("Progressing", ts, "ReplicaSetUpdated",
                                                 f'ReplicaSet "{rs_name}" is progressing.', update=True)]
        obj["status"] = status
        return
    if r:
        status.update(replicas=r, updatedReplicas=r, readyReplicas=r, availableReplicas=r)
    status["conditions"] = [
        _cond("Available", ts, "MinimumReplicasAvailable", "Deployment has minimum availability.", update=True),
        _cond("Progressing", ts, "NewReplicaSetAvailable",
              f'ReplicaSet "{rs_name}" has successfully progressed.', update=True),
    ]
    obj["status"] = status


def _reconcile_replicaset(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    r = spec["replicas"]
    status = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": r}
    if r:
        status.update(fullyLabeledReplicas=r, readyReplicas=r, availableReplicas=r)
    obj["status"] = status


def _reconcile_statefulset(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    r = spec["replicas"]
    rev = f"{obj['metadata']['name']}-{short_hash(spec.get('template'))}"
    status = {"observedGeneration": obj["metadata"].get("generation", 1), "replicas": r,
              "currentRevision": rev, "updateRevision": rev, "collisionCount": 0}
    if r and cluster.rollout_pending(obj, old):
        if old is not None:
            status["currentRevision"] = dget(old, "status", "currentRevision", default=rev)
        status.update(currentReplicas=r, updatedReplicas=r, readyReplicas=0, availableReplicas=0)
    elif r:
        status.update(readyReplicas=r, currentReplicas=r, updatedReplicas=r, availableReplicas=r)
    obj["status"] = status


def _reconcile_daemonset(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    spec.setdefault("revisionHistoryLimit", 10)
    obj["status"] = {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberAvailable": 1,
                     "numberMisscheduled": 0, "numberReady": 1, "updatedNumberScheduled": 1,
                     "observedGeneration": obj["metadata"].get("generation", 1)}
    if cluster.rollout_pending(obj, old):
        obj["status"].update(numberAvailable=0, numberReady=0, numberUnavailable=1)


def _reconcile_job(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    ts = obj["metadata"]["creationTimestamp"]
    if spec.get("suspend"):
        obj["status"] = {"conditions": [_cond("Suspended", ts, "JobSuspended", "Job suspended")]}
        return
    if cluster.rollout_pending(obj, old):
        obj["status"] = {"startTime": ts, "active": spec["parallelism"] or 1, "ready": 0, "terminating": 0,
                         "uncountedTerminatedPods": {}}
        return
    obj["status"] = {
        "startTime": ts,
        "completionTime": ts,
        "succeeded": spec["completions"] or 1,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            {**_cond("SuccessCriteriaMet", ts, "CompletionsReached", "Reached expected number of succeeded pods"),
             "lastProbeTime": ts},
            {**_cond("Complete", ts, "CompletionsReached", "Reached expected number of succeeded pods"),
             "lastProbeTime": ts},
        ],
    }


def _reconcile_cronjob(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    obj.setdefault("status", {})


def _reconcile_pdb(obj, cluster, old):
    ts = obj["metadata"]["creationTimestamp"]
    obj["status"] = {"observedGeneration": obj["metadata"].get("generation", 1), "currentHealthy": 1,
                     "desiredHealthy": 1, "disruptionsAllowed": 1, "expectedPods": 1,
                     "conditions": [{**_cond("DisruptionAllowed", ts, "SufficientPods"),
                                     "observedGeneration": obj["metadata"].get("generation", 1)}]}


def _reconcile_apiservice(obj, cluster, old):
    ts = obj["metadata"]["creationTimestamp"]
    obj["status"] = {"conditions": [_cond("Available", ts, "Local", "Local APIServices are always available")]}


def _reconcile_ingress(obj, cluster, old):
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}


def _reconcile_crd(obj, cluster, old):
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    ts = obj["metadata"]["creationTimestamp"]
    storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    obj["status"] = {
        "acceptedNames": copy.deepcopy(names),
        "conditions": [
            _cond("NamesAccepted", ts, "NoConflicts", "no conflicts found"),
            _cond("Established", ts, "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": storage,
    }


def reconcile_inference_service(obj, cluster, old):
    """Emulated KServe controller: InferenceService objects report Ready."""
    meta = obj["metadata"]
    ts = meta["creationTimestamp"]
    url = f"http://{meta['name']}.{meta.get('namespace', 'default')}.example"
    internal = f"http://{meta['name']}-predictor.{meta.get('namespace', 'default')}.svc.cluster.local"
    obj["status"] = {
        "url": url,
        "address": {"url": internal},
        "observedGeneration": meta.get("generation", 1),
        "components": {"predictor": {"url": url, "latestReadyRevision": f"{meta['name']}-predictor-00001",
                                     "latestCreatedRevision": f"{meta['name']}-predictor-00001"}},
        "modelStatus": {"states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                        "transitionStatus": "UpToDate"},
        "conditions": [_cond(t, ts, "", "") for t in ("IngressReady", "PredictorReady", "Ready")],
    }
    for c in obj["status"]["conditions"]:
        c.pop("reason")
        c.pop("message")


#: (group, kind) -> reconcile function; group "*" matches any group
DEFAULT_CONTROLLERS = {
    ("", "Namespace"): _reconcile_namespace,
    ("", "Secret"): _reconcile_secret,
    ("", "Service"): _reconcile_service,
    ("", "Pod"): _reconcile_pod,
    ("", "PersistentVolumeClaim"): _reconcile_pvc,
    ("", "PersistentVolume"): _reconcile_pv,
    ("", "Node"): _reconcile_node,
    ("apps", "Deployment"): _reconcile_deployment,
    ("apps", "ReplicaSet"): _reconcile_replicaset,
    ("apps", "StatefulSet"): _reconcile_statefulset,
    ("apps", "DaemonSet"): _reconcile_daemonset,
    ("batch", "Job"): _reconcile_job,
    ("batch", "CronJob"): _reconcile_cronjob,
    ("policy", "PodDisruptionBudget"): _reconcile_pdb,
    ("apiregistration.k8s.io", "APIService"): _reconcile_apiservice,
    ("networking.k8s.io", "Ingress"): _reconcile_ingress,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _reconcile_crd,
    ("*", "InferenceService"): reconcile_inference_service,
}


# --------------------------------------------------------------------------
# the store: one emulated cluster
# --------------------------------------------------------------------------


@dataclass
class Event:
    rv: int
    type: str
    key: tuple  # (group, plural)
    obj: dict
    old: dict | None = None


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes = b""

    def q(self, name: str, default=None):
        vals = self.query.get(name)
        return vals[0] if vals else default

    def flag(self, name: str) -> bool:
        return str(self.q(name, "")).lower() in ("1", "true", "yes")

    @property
    def dry_run(self) -> bool:
        return "All" in (self.query.get("dryRun") or [])

    @property
    def accept(self) -> str:
        return self.headers.get("accept", "") or ""


@dataclass
class Response:
    code: int
    body: object = None
    content_type: str = "application/json"


@dataclass
class WatchStream:
    """Returned by the store for ``?watch=1``; the HTTP layer drives it."""

    store: "ClusterStore"
    rt: ResType
    version: str
    namespace: str | None
    label_pred: object
    field_pred: object
    last_rv: int
    initial: list
    timeout: float
    bookmarks: bool = False


class ClusterStore:
    """In-memory objects of one emulated cluster, with the API semantics."""

    def __init__(self, name: str, secret: bytes | None = None, rollout_seconds: float = 0.0):
        self.name = name
        #: emulated controller latency: a workload reports ready this long after its rollout starts
        self.rollout_seconds = max(float(rollout_seconds), 0.0)
        self._rollouts: dict = {}  # uid -> (generation, monotonic deadline)
        self._timers: list = []
        self._writing_dry_run = False
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.objects: dict = {}  # (group, plural) -> {(ns, name): obj}
        self.events: deque = deque(maxlen=EVENT_HISTORY)
        self.compacted_rv = 0
        self.controllers = dict(DEFAULT_CONTROLLERS)
        self.stopped = False
        self.request_count = 0
        self.server_address = "127.0.0.1:0"
        self._ip_counter = 10
        self._secret = secret or os.urandom(16)
        self._crd_types: dict = {}  # (group, plural) -> ResType
        self._builtin = {(t.group, t.plural): t for t in BUILTIN_TYPES}
        self._seed()

    # ---- seed / reset ------------------------------------------------------

    def _seed(self):
        with self.lock:
            for ns in SEED_NAMESPACES:
                self._internal_create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            self._internal_create({"apiVersion": "v1", "kind": "Node",
                                   "metadata": {"name": NODE_NAME,
                                                "labels": {"kubernetes.io/hostname": NODE_NAME,
                                                           "kubernetes.io/os": "linux"}}})
            self._internal_create({"apiVersion": "v1", "kind": "Service",
                                   "metadata": {"name": "kubernetes", "namespace": "default",
                                                "labels": {"component": "apiserver", "provider": "kubernetes"}},
                                   "spec": {"clusterIP": "10.96.0.1",
                                            "ports": [{"name": "https", "port": 443, "targetPort": 6443}]}})
            self._internal_create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                   "metadata": {"name": "standard", "annotations": {
                                       "storageclass.kubernetes.io/is-default-class": "true"}},
                                   "provisioner": "kubeapi-double/hostpath", "reclaimPolicy": "Delete",
                                   "volumeBindingMode": "Immediate"})

    def _internal_create(self, obj: dict):
        rt = self.type_for_kind(obj["apiVersion"], obj["kind"])
        version = obj["apiVersion"].split("/")[-1]
        ns = obj["metadata"].get("namespace")
        req = Request("POST", "", {"fieldManager": ["kube-apiserver"]}, {})
        return self.create(rt, version, ns, copy.deepcopy(obj), req)

    def reset(self):
        """Drop every object and re-seed (resourceVersion keeps counting up)."""
        with self.lock:
            for key, bucket in list(self.objects.items()):
                for obj in list(bucket.values()):
                    self._emit("DELETED", key, obj)
            self.objects.clear()
            self._crd_types.clear()
            self._seed()

    def stop(self):
        with self.cond:
            self.stopped = True
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self.cond.notify_all()

    # ---- emulated controller latency -----------------------------------------

    def rollout_pending(self, obj: dict, old: dict | None) -> bool:
        """Whether a workload's current spec is still rolling out (``rollout_seconds`` > 0 only).

        A rollout starts when a Deployment, StatefulSet, DaemonSet or Job is created
        or its generation changes, and ends ``rollout_seconds`` later, when a timer
        writes the ready status (a MODIFIED event for watchers). A write that leaves
        the generation as it was starts nothing, so a no-change apply never waits.
        """
        if self.rollout_seconds <= 0 or self._writing_dry_run:
            return False
        meta = obj["metadata"]
        uid, generation = meta.get("uid"), meta.get("generation", 1)
        entry = self._rollouts.get(uid)  # (generation, deadline[, "scheduled"])
        if entry is not None and entry[0] == generation:
            return time.monotonic() < entry[1]
        if old is not None and old["metadata"].get("generation", 1) == generation:
            return False  # not a new rollout (the first reconcile pass of an update, or a no-op)
        self._rollouts[uid] = (generation, time.monotonic() + self.rollout_seconds)
        return True

    def _schedule_rollout_end(self, rt: ResType, obj: dict):
        """Once per rollout (however the object was written): a timer that ends it."""
        meta = obj["metadata"]
        entry = self._rollouts.get(meta.get("uid"))
        if entry is None or self.stopped or len(entry) > 2 or entry[0] != meta.get("generation", 1):
            return
        self._rollouts[meta["uid"]] = (*entry, "scheduled")
        timer = threading.Timer(max(entry[1] - time.monotonic(), 0.0) + 0.005, self._end_rollout,
                                (rt, meta.get("namespace"), meta["name"], meta["uid"], entry[0]))
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _end_rollout(self, rt: ResType, ns: str | None, name: str, uid: str, generation: int):
        with self.cond:
            if self.stopped:
                return
            live = self.objects.get((rt.group, rt.plural), {}).get((ns, name))
            if live is None or live["metadata"].get("uid") != uid or live["metadata"].get("generation", 1) != generation:
                return
            if time.monotonic() < self._rollouts.get(uid, (None, 0.0))[1]:
                return  # (not expected: the timer fires after the deadline)
            new = copy.deepcopy(live)
            self._reconcile(rt, new, live)
            if new.get("status") == live.get("status"):
                return
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._store(rt, new, "MODIFIED", live)

    # ---- helpers for tests -------------------------------------------------

    def all_objects(self) -> list:
        with self.lock:
            out = []
            for (group, plural), bucket in sorted(self.objects.items()):
                for key in sorted(bucket):
                    out.append(copy.deepcopy(bucket[key]))
            return out

    def objects_of(self, api_version: str, kind: str, namespace: str | None = None) -> list:
        rt = self.type_for_kind(api_version, kind)
        with self.lock:
            bucket = self.objects.get((rt.group, rt.plural), {})
            return [copy.deepcopy(bucket[k]) for k in sorted(bucket) if namespace is None or k[0] == namespace]

    def get_object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        rt = self.type_for_kind(api_version, kind)
        with self.lock:
            obj = self.objects.get((rt.group, rt.plural), {}).get((namespace if rt.namespaced else None, name))
            return copy.deepcopy(obj) if obj else None

    def allocate_ip(self) -> str:
        self._ip_counter += 1
        return f"10.96.{(self._ip_counter // 250) % 250}.{self._ip_counter % 250 + 1}"

    def pod_ip(self, obj) -> str:
        h = int(hashlib.md5(obj["metadata"]["uid"].encode()).hexdigest(), 16)  # noqa: S324 - not security
        return f"10.244.{(h >> 8) % 250}.{h % 250 + 2}"

    # ---- type registry -----------------------------------------------------

    def types(self) -> list:
        return list(self._builtin.values()) + list(self._crd_types.values())

    def lookup(self, group: str, version: str, plural: str) -> ResType | None:
        rt = self._builtin.get((group, plural)) or self._crd_types.get((group, plural))
        if rt and version in rt.versions:
            return rt
        return None

    def type_for_kind(self, api_version: str, kind: str) -> ResType:
        group, _sep, version = api_version.rpartition("/")
        for rt in self.types():
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({kind} {api_version})")

    def groups(self) -> dict:
        """group -> sorted versions (preferred first)."""
        out: dict = {}
        for rt in self.types():
            if rt.group:
                out.setdefault(rt.group, set()).update(rt.versions)
        return {g: sorted(v, key=version_priority) for g, v in out.items()}

    def _crd_to_type(self, crd: dict) -> ResType | None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        versions = tuple(v["name"] for v in spec.get("versions") or [] if v.get("served", True))
        if not versions or not names.get("plural") or not names.get("kind"):
            return None
        status = any(dget(v, "subresources", "status") is not None for v in spec.get("versions") or [])
        scale = any(dget(v, "subresources", "scale") is not None for v in spec.get("versions") or [])
        return ResType(
            group=spec.get("group", ""),
            versions=versions,
            kind=names["kind"],
            plural=names["plural"],
            singular=names.get("singular") or names["kind"].lower(),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            status=status,
            scale=scale,
            crd=True,
            generation=True,
        )

    def _sync_crd(self, crd: dict, deleted: bool = False):
        rt = self._crd_to_type(crd)
        if rt is None:
            return
        key = (rt.group, rt.plural)
        if deleted:
            self._crd_types.pop(key, None)
            for obj in list(self.objects.get(key, {}).values()):
                self._remove(key, obj)
            self.objects.pop(key, None)
        else:
            self._crd_types[key] = rt

    # ---- low-level write ---------------------------------------------------

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _emit(self, etype: str, key: tuple, obj: dict, old: dict | None = None):
        if len(self.events) == self.events.maxlen:
            self.compacted_rv = self.events[0].rv
        self.events.append(Event(self.rv, etype, key, obj, old))
        self.cond.notify_all()

    def _store(self, rt: ResType, obj: dict, etype: str, old: dict | None = None):
        key = (rt.group, rt.plural)
        meta = obj["metadata"]
        obj_key = (meta.get("namespace"), meta["name"])
        self.objects.setdefault(key, {})[obj_key] = obj
        self._emit(etype, key, obj, old)
        if self._rollouts:
            self._schedule_rollout_end(rt, obj)
        if rt.group == "apiextensions.k8s.io" and rt.kind == "CustomResourceDefinition":
            if old is not None:
                old_rt = self._crd_to_type(old)
                new_rt = self._crd_to_type(obj)
                if old_rt and new_rt and (old_rt.group, old_rt.plural) != (new_rt.group, new_rt.plural):
                    self._crd_types.pop((old_rt.group, old_rt.plural), None)
            self._sync_crd(obj)

    def _remove(self, key: tuple, obj: dict):
        meta = obj["metadata"]
        bucket = self.objects.get(key, {})
        if bucket.pop((meta.get("namespace"), meta["name"]), None) is None:
            return
        final = copy.deepcopy(obj)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", key, final)
        if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._sync_crd(obj, deleted=True)
        return final

    # ---- object preparation ------------------------------------------------

    def _reconcile(self, rt: ResType, obj: dict, old: dict | None):
        fn = self.controllers.get((rt.group, rt.kind)) or (self.controllers.get(("*", rt.kind)) if rt.crd else None)
        if fn:
            fn(obj, self, old)

    @staticmethod
    def _fold_secret(rt: ResType, obj: dict):
        if rt.group == "" and rt.kind == "Secret" and isinstance(obj, dict) and obj.get("stringData") is not None:
            data = obj.get("data") or {}
            for key, value in (obj.pop("stringData") or {}).items():
                data[key] = b64(str(value))
            obj["data"] = data
        elif isinstance(obj, dict) and rt.kind == "Secret" and "stringData" in obj:
            obj.pop("stringData")

    def _check_body(self, rt: ResType, version: str, obj, name: str | None = None):
        if not isinstance(obj, dict):
            raise bad_request("the request body must be a JSON object")
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind of the object ({kind}) does not match the request ({rt.kind})")
        obj["kind"] = rt.kind
        obj["apiVersion"] = rt.api_version(version)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if name is not None and meta.get("name") not in (None, name):
            raise bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the URL ({name})')
        if name is not None:
            meta["name"] = name
        self._fold_secret(rt, obj)
        return obj

    def _check_namespace(self, rt: ResType, ns: str | None, obj: dict):
        meta = obj["metadata"]
        if rt.namespaced:
            if not ns:
                raise bad_request("a namespace is required for namespaced resources")
            if meta.get("namespace") not in (None, "", ns):
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
            if (None, ns) not in self.objects.get(("", "namespaces"), {}):
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                               {"name": ns, "kind": "namespaces"})
        else:
            meta.pop("namespace", None)

    def _validate(self, rt: ResType, obj: dict):
        name = obj["metadata"].get("name", "")
        if rt.group == "rbac.authorization.k8s.io":
            if not name or "/" in name or "%" in name:
                raise invalid(rt, name, f"metadata.name: Invalid value: {name!r}: may not contain '/' or '%'")
        elif not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name or "") or len(name) > 253:
            raise invalid(rt, name, f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain "
                                    "must consist of lower case alphanumeric characters, '-' or '.'")
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            spec = obj.get("spec") or {}
            names = spec.get("names") or {}
            problems = []
            if not spec.get("group"):
                problems.append("spec.group: Required value")
            if not names.get("plural") or not names.get("kind"):
                problems.append("spec.names: plural and kind are required")
            if not spec.get("versions"):
                problems.append("spec.versions: Required value")
            elif sum(1 for v in spec["versions"] if v.get("storage")) != 1:
                problems.append("spec.versions: exactly one version must be the storage version")
            if names.get("plural") and spec.get("group") and name != f"{names['plural']}.{spec['group']}":
                problems.append("metadata.name: must be spec.names.plural + \".\" + spec.group")
            if problems:
                raise invalid(rt, name, "; ".join(problems))
            other = self._crd_types.get((spec["group"], names["plural"]))
            if other and other.kind != names["kind"]:
                raise invalid(rt, name, "spec.names.plural already in use")
            if (spec["group"], names["plural"]) in self._builtin:
                raise invalid(rt, name, "spec.names.plural conflicts with a built-in resource")

    # ---- managed fields ----------------------------------------------------

    @staticmethod
    def _entries(obj: dict) -> list:
        return [dict(e) for e in (obj.get("metadata", {}).get("managedFields") or [])]

    @staticmethod
    def _set_entries(obj: dict, entries: list):
        entries = [e for e in entries if e.get("fieldsV1")]
        if entries:
            obj["metadata"]["managedFields"] = entries
        else:
            obj["metadata"].pop("managedFields", None)

    def _record_update(self, rt: ResType, old: dict | None, new: dict, manager: str, subresource: str | None):
        """Give ``manager`` (operation Update) the fields it changed; others lose them."""
        if subresource == "status":
            new_paths = field_paths({"status": new.get("status") or {}})
        else:
            new_paths = object_field_paths(new, rt)
        if old is None:
            changed = new_paths
        else:
            changed = {p for p in new_paths if path_value(old, p, None) != path_value(new, p, None)}
        out, mine, mine_paths = [], None, set()
        for e in self._entries(old or {}):
            orig = fields_v1_to_paths(e.get("fieldsV1"))
            paths = {p for p in orig if path_value(new, p, KeyError) is not KeyError}
            if e.get("manager") == manager and e.get("operation") == "Update" and e.get("subresource") == subresource:
                mine, mine_paths = e, paths
                continue
            if paths != orig or changed & paths:
                e = {**e, "fieldsV1": paths_to_fields_v1(paths - changed)}
            out.append(e)
        if mine is not None:
            total = mine_paths | changed
            if total != fields_v1_to_paths(mine.get("fieldsV1")):
                mine = {**mine, "fieldsV1": paths_to_fields_v1(total), "time": now_ts()}
            out.append(mine)
        elif changed:
            e = {"manager": manager, "operation": "Update", "apiVersion": new["apiVersion"], "time": now_ts(),
                 "fieldsType": "FieldsV1", "fieldsV1": paths_to_fields_v1(changed)}
            if subresource:
                e["subresource"] = subresource
            out.append(e)
        self._set_entries(new, out)

    # ---- verbs -------------------------------------------------------------

    def get(self, rt: ResType, version: str, ns: str | None, name: str) -> dict:
        obj = self.objects.get((rt.group, rt.plural), {}).get((ns if rt.namespaced else None, name))
        if obj is None:
            raise not_found(rt, name)
        return self._out(rt, version, obj)

    @staticmethod
    def _out(rt: ResType, version: str, obj: dict) -> dict:
        """The object as served in ``version``.

        Shallow on purpose: stored objects are never mutated in place (every
        write builds a new object), so answers may share their subtrees.
        """
        out = {"apiVersion": rt.api_version(version), "kind": obj.get("kind", rt.kind),
               "metadata": obj.get("metadata", {})}
        for key, value in obj.items():
            if key not in out:
                out[key] = value
        return out

    def list(self, rt: ResType, version: str, ns: str | None, req: Request) -> dict:
        label_pred = parse_label_selector(req.q("labelSelector"))
        field_pred = parse_field_selector(req.q("fieldSelector"))
        bucket = self.objects.get((rt.group, rt.plural), {})
        keys = sorted(bucket, key=lambda k: (k[0] or "", k[1]))
        cont = req.q("continue")
        if cont:
            try:
                start = tuple(json.loads(base64.b64decode(cont)))
            except (ValueError, TypeError) as exc:
                raise bad_request("invalid continue token") from exc
            keys = [k for k in keys if (k[0] or "", k[1]) > (start[0] or "", start[1])]
        items = []
        for k in keys:
            if ns is not None and k[0] != ns:
                continue
            obj = bucket[k]
            if not label_pred(obj["metadata"].get("labels") or {}) or not field_pred(obj):
                continue
            items.append(k)
        limit = int(req.q("limit") or 0)
        meta: dict = {"resourceVersion": str(self.rv)}
        if limit and len(items) > limit:
            last = items[limit - 1]
            meta["continue"] = base64.b64encode(json.dumps([last[0] or "", last[1]]).encode()).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version(version),
            "metadata": meta,
            "items": [self._out(rt, version, bucket[k]) for k in items],
        }

    def create(self, rt: ResType, version: str, ns: str | None, body, req: Request) -> dict:
        if not rt.stored:
            return self._virtual_create(rt, version, body)
        obj = self._check_body(rt, version, body)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        self._check_namespace(rt, ns, obj)
        self._validate(rt, obj)
        key = (rt.group, rt.plural)
        if (meta.get("namespace"), meta["name"]) in self.objects.get(key, {}):
            raise ApiError(409, "AlreadyExists", f'{rt.gr()} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": rt.group, "kind": rt.plural})
        for k in SYSTEM_META:
            meta.pop(k, None)
        if rt.status:
            obj.pop("status", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_ts()
        if rt.generation:
            meta["generation"] = 1
        self._reconcile(rt, obj, None)
        self._record_update(rt, None, obj, req.q("fieldManager") or _manager_from_agent(req.headers.get("user-agent")),
                            None)
        if req.dry_run:
            return self._out(rt, version, obj)
        meta["resourceVersion"] = self._next_rv()
        self._store(rt, obj, "ADDED")
        return self._out(rt, version, obj)

    def _virtual_create(self, rt: ResType, version: str, body) -> dict:
        out = copy.deepcopy(body) if isinstance(body, dict) else {}
        out["kind"], out["apiVersion"] = rt.kind, rt.api_version(version)
        out.setdefault("metadata", {})["creationTimestamp"] = None
        if rt.kind == "SelfSubjectAccessReview":
            out["status"] = {"allowed": True, "reason": "kubeapi-double allows everything"}
        return out

    def _commit(self, rt: ResType, version: str, old: dict, new: dict, req: Request, manager: str | None,
                subresource: str | None = None, managed_done: bool = False) -> dict:
        """Write ``new`` over ``old`` unless nothing changed (then ``old`` is returned unchanged)."""
        meta = new["metadata"]
        old_meta = old["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        meta["name"] = old_meta["name"]
        if rt.namespaced:
            meta["namespace"] = old_meta["namespace"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if rt.generation:
            meta["generation"] = old_meta.get("generation", 1)
        else:
            meta.pop("generation", None)
        if subresource != "status":
            self._reconcile(rt, new, old)
        if rt.generation and spec_part(old) != spec_part(new):
            meta["generation"] += 1
            if subresource != "status":
                self._reconcile(rt, new, old)
        if not managed_done:
            if "managedFields" in meta and meta["managedFields"] != old_meta.get("managedFields"):
                pass  # the client set managedFields explicitly: keep them
            else:
                meta["managedFields"] = copy.deepcopy(old_meta.get("managedFields") or [])
                if not meta["managedFields"]:
                    meta.pop("managedFields")
                self._record_update(rt, old, new, manager or "unknown", subresource)
        if content_equal(old, new) and (old_meta.get("managedFields") == meta.get("managedFields")
                                        or not managed_done):
            return self._out(rt, version, old)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if req.dry_run:
                return self._out(rt, version, new)
            final = self._remove((rt.group, rt.plural), old)
            return self._out(rt, version, final or new)
        if req.dry_run:
            return self._out(rt, version, new)
        meta["resourceVersion"] = self._next_rv()
        self._store(rt, new, "MODIFIED", old)
        return self._out(rt, version, new)

    def _existing(self, rt: ResType, ns: str | None, name: str) -> dict:
        obj = self.objects.get((rt.group, rt.plural), {}).get((ns if rt.namespaced else None, name))
        if obj is None:
            raise not_found(rt, name)
        return obj

    @staticmethod
    def _check_rv(rt: ResType, old: dict, body: dict):
        want = dget(body, "metadata", "resourceVersion")
        if want and str(want) != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {rt.gr()} "{old["metadata"]["name"]}": the object has '
                           "been modified; please apply your changes to the latest version and try again",
                           {"name": old["metadata"]["name"], "group": rt.group, "kind": rt.plural})

    def _finish_write(self, rt: ResType, version: str, old: dict, new: dict, req: Request, subresource: str | None) -> dict:
        """Shared end of PUT and PATCH: the status subresource rule, validation, the field manager, commit."""
        if subresource == "status":
            new = {**copy.deepcopy(old), "status": new.get("status")}
            if new["status"] is None:
                new.pop("status")
        elif rt.status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        self._validate(rt, new)
        manager = req.q("fieldManager") or _manager_from_agent(req.headers.get("user-agent"))
        return self._commit(rt, version, old, new, req, manager, subresource)

    def update(self, rt: ResType, version: str, ns: str | None, name: str, body, req: Request,
               subresource: str | None = None) -> dict:
        old = self._existing(rt, ns, name)
        new = self._check_body(rt, version, body, name)
        self._check_rv(rt, old, new)
        return self._finish_write(rt, version, old, new, req, subresource)

    def patch(self, rt: ResType, version: str, ns: str | None, name: str, req: Request,
              subresource: str | None = None) -> dict:
        ctype = (req.headers.get("content-type") or "").split(";")[0].strip()
        if ctype == "application/apply-patch+yaml":
            return self.apply(rt, version, ns, name, req, subresource)
        try:
            patch = json.loads(req.body or b"null")
        except ValueError as exc:
            raise bad_request(f"invalid patch body: {exc}") from exc
        old = self._existing(rt, ns, name)
        base = copy.deepcopy(old)
        if ctype == "application/json-patch+json":
            new = json_patch(base, patch)
        elif ctype == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise bad_request("merge patch body must be an object")
            self._fold_secret(rt, patch)
            new = json_merge_patch(base, patch)
        elif ctype == "application/strategic-merge-patch+json":
            if rt.crd:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
            if not isinstance(patch, dict):
                raise bad_request("strategic merge patch body must be an object")
            self._fold_secret(rt, patch)
            new = strategic_merge_patch(base, patch) or {}
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch content type {ctype!r}")
        if isinstance(patch, dict):
            self._check_rv(rt, old, patch)
        new = self._check_body(rt, version, new, name)
        return self._finish_write(rt, version, old, new, req, subresource)

    def apply(self, rt: ResType, version: str, ns: str | None, name: str, req: Request,
              subresource: str | None = None) -> dict:
        """Server-side apply (simplified managedFields model)."""
        text = (req.body or b"").decode("utf-8")
        try:
            applied = json.loads(text)
        except ValueError:
            if yaml is None:
                raise bad_request("YAML apply bodies need PyYAML; send JSON") from None
            try:
                applied = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise bad_request(f"invalid apply body: {exc}") from exc
        if not isinstance(applied, dict):
            raise bad_request("apply body must be an object")
        manager = req.q("fieldManager")
        if not manager:
            raise bad_request("PATCH, with apply, requires fieldManager")
        force = req.flag("force")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("apiVersion and kind must be set in an applied configuration")
        applied = strip_nulls(applied)
        applied = self._check_body(rt, version, applied, name)
        for k in SYSTEM_META:
            if k != "resourceVersion":
                applied["metadata"].pop(k, None)
        key = (rt.group, rt.plural)
        old = self.objects.get(key, {}).get((ns if rt.namespaced else None, name))
        if old is not None:
            self._check_rv(rt, old, applied)
        applied["metadata"].pop("resourceVersion", None)
        if subresource == "status":
            if old is None:
                raise not_found(rt, name)
            applied = {"apiVersion": applied["apiVersion"], "kind": applied["kind"],
                       "metadata": {"name": name}, "status": applied.get("status") or {}}
            new_paths = field_paths({"status": applied["status"]})
        else:
            if rt.status:
                applied.pop("status", None)
            new_paths = object_field_paths(applied, rt)
        live = copy.deepcopy(old) if old is not None else {"metadata": {}}
        entries = self._entries(live)
        mine_prev: set = set()
        prev_entry = None
        conflicts = []
        replaced = {}  # index in entries -> new entry (ownership taken with force)
        owned_by_others: set = set()
        for n, e in enumerate(entries):
            paths = fields_v1_to_paths(e.get("fieldsV1"))
            if e.get("manager") == manager and e.get("operation") == "Apply" and e.get("subresource") == subresource:
                mine_prev, prev_entry = paths, e
                continue
            overlap = {p for p in new_paths & paths
                       if not (p and isinstance(p[-1], tuple))
                       and path_value(live, p, None) != path_value(applied, p, None)}
            if overlap and not force:
                conflicts += [(e.get("manager"), p) for p in sorted(overlap, key=str)]
            if overlap and force:
                paths = paths - overlap
                replaced[n] = {**e, "fieldsV1": paths_to_fields_v1(paths)}
            owned_by_others |= paths
        if conflicts:
            lines = [f'conflict with "{m}": {_fmt_path(p)}' for m, p in conflicts]
            raise ApiError(409, "Conflict",
                           f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: "
                           + "; ".join(lines),
                           {"name": name, "group": rt.group, "kind": rt.plural,
                            "causes": [{"reason": "FieldManagerConflict", "message": line, "field": _fmt_path(p)}
                                       for line, (m, p) in zip(lines, conflicts)]})
        # drop fields this manager applied before and no longer sends (unless owned by others)
        base = live
        for p in sorted(mine_prev - new_paths - owned_by_others, key=len, reverse=True):
            if p and isinstance(p[-1], str) and len(p) >= 2 and isinstance(p[-2], tuple):
                item_path = p[:-1]
                item = path_value(base, item_path, None)
                if isinstance(item, dict) and p[-1] in json.loads(item_path[-1][1]):
                    continue  # merge key stays while the item exists
            remove_path(base, p)
        if subresource == "status":
            merged = copy.deepcopy(base)
            merged["status"] = apply_merge(base.get("status") or {}, applied["status"], "status")
        else:
            merged = apply_merge(base, applied)
        if old is not None and rt.status and subresource != "status":
            if "status" in old:
                merged["status"] = copy.deepcopy(old["status"])
            else:
                merged.pop("status", None)
        mine_entry = {"manager": manager, "operation": "Apply", "apiVersion": rt.api_version(version),
                      "time": now_ts(), "fieldsType": "FieldsV1", "fieldsV1": paths_to_fields_v1(new_paths)}
        if subresource:
            mine_entry["subresource"] = subresource
        if prev_entry is not None and mine_prev == new_paths:
            mine_entry = prev_entry
        new_entries = []
        for n, e in enumerate(entries):
            new_entries.append(mine_entry if e is prev_entry else replaced.get(n, e))
        if prev_entry is None:
            new_entries.append(mine_entry)
        merged.setdefault("metadata", {})
        self._set_entries(merged, new_entries)
        if old is None:
            # create through apply
            merged["metadata"]["name"] = name
            self._check_namespace(rt, ns, merged)
            self._validate(rt, merged)
            meta = merged["metadata"]
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_ts()
            if rt.generation:
                meta["generation"] = 1
            self._reconcile(rt, merged, None)
            if req.dry_run:
                return self._out(rt, version, merged)
            meta["resourceVersion"] = self._next_rv()
            self._store(rt, merged, "ADDED")
            return self._out(rt, version, merged)
        self._validate(rt, merged)
        return self._commit(rt, version, old, merged, req, manager, subresource, managed_done=True)

    def delete(self, rt: ResType, version: str, ns: str | None, name: str, req: Request) -> dict:
        old = self._existing(rt, ns, name)
        opts = {}
        if req.body:
            try:
                opts = json.loads(req.body) or {}
            except ValueError:
                opts = {}
        policy = req.q("propagationPolicy") or opts.get("propagationPolicy") or "Background"
        pre = (opts.get("preconditions") or {})
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f'Precondition failed: UID in precondition: {pre["uid"]}, '
                                            f'UID in object meta: {old["metadata"]["uid"]}')
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "Precondition failed: resourceVersion mismatch")
        if req.dry_run:
            return self._out(rt, version, old)
        return self._out(rt, version, self._delete_obj(rt, old, policy))

    def _delete_obj(self, rt: ResType, old: dict, policy: str) -> dict:
        key = (rt.group, rt.plural)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_ts()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._store(rt, new, "MODIFIED", old)
            return new
        if rt.group == "" and rt.kind == "Namespace":
            ns_name = old["metadata"]["name"]
            for okey, bucket in list(self.objects.items()):
                for (ons, _oname), obj in list(bucket.items()):
                    if ons == ns_name:
                        self._remove(okey, obj)
        final = self._remove(key, old) or old
        uid = old["metadata"]["uid"]
        # garbage collection through ownerReferences
        for okey, bucket in list(self.objects.items()):
            for obj in list(bucket.values()):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                ort = self._builtin.get(okey) or self._crd_types.get(okey)
                if ort is None:
                    continue
                if policy == "Orphan":
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not new["metadata"]["ownerReferences"]:
                        new["metadata"].pop("ownerReferences")
                    new["metadata"]["resourceVersion"] = self._next_rv()
                    self._store(ort, new, "MODIFIED", obj)
                else:
                    current = self.objects.get(okey, {}).get((obj["metadata"].get("namespace"), obj["metadata"]["name"]))
                    if current is not None:
                        self._delete_obj(ort, current, policy)
        return final

    def delete_collection(self, rt: ResType, version: str, ns: str | None, req: Request) -> dict:
        listing = self.list(rt, version, ns, Request("GET", "", {k: v for k, v in req.query.items()
                                                                 if k in ("labelSelector", "fieldSelector")}, {}))
        deleted = []
        for item in listing["items"]:
            old = self._existing(rt, item["metadata"].get("namespace"), item["metadata"]["name"])
            if req.dry_run:
                deleted.append(self._out(rt, version, old))
            else:
                policy = req.q("propagationPolicy") or "Background"
                deleted.append(self._out(rt, version, self._delete_obj(rt, old, policy)))
        return {"kind": rt.list_kind, "apiVersion": rt.api_version(version),
                "metadata": {"resourceVersion": str(self.rv)}, "items": deleted}

    def token_request(self, ns: str, name: str, body, req: Request) -> dict:
        sa_rt = self._builtin[("", "serviceaccounts")]
        sa = self._existing(sa_rt, ns, name)
        spec = (body or {}).get("spec") or {}
        expiration = int(spec.get("expirationSeconds") or 3600)
        audiences = spec.get("audiences") or ["https://kubernetes.default.svc.cluster.local"]
        now = int(time.time())
        header = {"alg": "RS256", "kid": "kubeapi-double"}
        payload = {"aud": audiences, "exp": now + expiration, "iat": now, "nbf": now,
                   "iss": "https://kubernetes.default.svc.cluster.local",
                   "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]}},
                   "sub": f"system:serviceaccount:{ns}:{name}"}
        signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
        sig = hmac.new(self._secret, signing.encode(), hashlib.sha256).digest()
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": None},
            "spec": {"audiences": audiences, "expirationSeconds": expiration,
                     "boundObjectRef": spec.get("boundObjectRef")},
            "status": {"token": signing + "." + b64url(sig), "expirationTimestamp": ts_after(expiration)},
        }

    def scale(self, rt: ResType, ns: str, name: str, req: Request, version: str) -> dict:
        obj = self._existing(rt, ns, name)
        if req.method in ("PUT", "PATCH"):
            try:
                body = json.loads(req.body or b"{}")
            except ValueError as exc:
                raise bad_request("invalid scale body") from exc
            ctype = (req.headers.get("content-type") or "").split(";")[0].strip()
            current = self._scale_obj(rt, obj)
            if req.method == "PATCH":
                if ctype == "application/json-patch+json":
                    body = json_patch(current, body)
                else:
                    body = json_merge_patch(current, body)
            replicas = dget(body, "spec", "replicas")
            if replicas is not None:
                new = copy.deepcopy(obj)
                new["spec"]["replicas"] = int(replicas)
                manager = req.q("fieldManager") or _manager_from_agent(req.headers.get("user-agent"))
                self._commit(rt, version, obj, new, req, manager, "scale")
                obj = self._existing(rt, ns, name)
        return self._scale_obj(rt, obj)

    @staticmethod
    def _scale_obj(rt: ResType, obj: dict) -> dict:
        sel = dget(obj, "spec", "selector", "matchLabels") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: obj["metadata"][k] for k in SCALE_META if k in obj["metadata"]},
                "spec": {"replicas": dget(obj, "spec", "replicas", default=0)},
                "status": {"replicas": dget(obj, "status", "replicas", default=0),
                           "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}

    # ---- watch -------------------------------------------------------------

    def open_watch(self, rt: ResType, version: str, ns: str | None, req: Request) -> WatchStream:
        label_pred = parse_label_selector(req.q("labelSelector"))
        field_pred = parse_field_selector(req.q("fieldSelector"))
        timeout = float(req.q("timeoutSeconds") or 1800)
        rv_param = req.q("resourceVersion")
        initial = []
        if not rv_param or rv_param == "0" or req.flag("sendInitialEvents"):
            selectors = {k: v for k, v in req.query.items() if k in ("labelSelector", "fieldSelector")}
            listing = self.list(rt, version, ns, Request("GET", "", selectors, {}))
            initial = [{"type": "ADDED", "object": item} for item in listing["items"]]
            last = self.rv
        else:
            try:
                last = int(rv_param)
            except ValueError as exc:
                raise bad_request(f"invalid resourceVersion {rv_param!r}") from exc
            if last < self.compacted_rv:
                initial = [{"type": "ERROR", "object": ApiError(
                    410, "Expired", f"too old resource version: {last} ({self.compacted_rv})").status()}]
                timeout = 0
        return WatchStream(self, rt, version, ns, label_pred, field_pred, last, initial, timeout,
                           req.flag("allowWatchBookmarks"))

    def watch_events(self, stream: WatchStream, wait: float) -> list:
        """Events after ``stream.last_rv`` that match the watch, waiting up to ``wait`` seconds."""
        key = (stream.rt.group, stream.rt.plural)
        with self.cond:
            if not self.events or self.events[-1].rv <= stream.last_rv:
                if self.stopped:
                    return []
                self.cond.wait(wait)
            new = []
            for ev in reversed(self.events):
                if ev.rv <= stream.last_rv:
                    break
                new.append(ev)
            new.reverse()
        out = []
        for ev in new:
            stream.last_rv = ev.rv
            if ev.key != key:
                continue
            meta = ev.obj["metadata"]
            if stream.namespace is not None and meta.get("namespace") != stream.namespace:
                continue

            def matches(o):
                return o is not None and stream.label_pred(o["metadata"].get("labels") or {}) and stream.field_pred(o)

            now_match = matches(ev.obj)
            etype = ev.type
            if etype == "MODIFIED":
                was = matches(ev.old)
                if was and not now_match:
                    etype = "DELETED"
                elif now_match and not was:
                    etype = "ADDED"
                elif not now_match:
                    continue
            elif not now_match:
                continue
            out.append({"type": etype, "object": self._out(stream.rt, stream.version, ev.obj)})
        return out

    # ---- discovery ---------------------------------------------------------

    def api_resource_list(self, group: str, version: str) -> dict:
        resources = []
        gv = f"{group}/{version}" if group else version
        types = [t for t in self.types() if t.group == group and version in t.versions]
        if not types:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        for t in sorted(types, key=lambda t: t.plural):
            entry = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                     "verbs": list(t.verbs)}
            if t.short_names:
                entry["shortNames"] = list(t.short_names)
            if t.categories:
                entry["categories"] = list(t.categories)
            if t.stored:
                entry["storageVersionHash"] = b64url(hashlib.sha256(f"{t.group}/{t.plural}".encode()).digest()[:8])
            resources.append(entry)
            if t.status:
                resources.append({"name": f"{t.plural}/status", "singularName": "", "namespaced": t.namespaced,
                                  "kind": t.kind, "verbs": list(STATUS_VERBS)})
            if t.scale:
                resources.append({"name": f"{t.plural}/scale", "singularName": "", "namespaced": t.namespaced,
                                  "group": "autoscaling", "version": "v1", "kind": "Scale",
                                  "verbs": list(STATUS_VERBS)})
            if t.group == "" and t.plural == "serviceaccounts":
                resources.append({"name": "serviceaccounts/token", "singularName": "", "namespaced": True,
                                  "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest",
                                  "verbs": ["create"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def openapi_v3_index(self) -> dict:
        """``/openapi/v3``: one entry per group-version (no schemas are served)."""
        paths = {}
        gvs = {("", "v1")} | {(t.group, v) for t in self.types() for v in t.versions}
        for group, version in sorted(gvs):
            rel = f"api/{version}" if not group else f"apis/{group}/{version}"
            digest = hashlib.sha256(json.dumps(sorted((t.plural, t.kind, t.namespaced) for t in self.types()
                                                      if t.group == group and version in t.versions)).encode())
            paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={digest.hexdigest()[:32].upper()}"}
        return {"paths": paths}

    def openapi_v3_doc(self, group: str, version: str) -> dict:
        """A schema-less OpenAPI v3 document whose PATCH operations declare ``fieldValidation``.

        That tells kubectl the server validates fields itself, so kubectl skips
        client-side validation (which would need full schemas from /openapi/v2).
        """
        types = [t for t in self.types() if t.group == group and version in t.versions]
        if not types and not (group == "" and version == "v1"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                  for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        paths = {}
        for t in types:
            gvk = {"group": t.group, "version": version, "kind": t.kind}
            item = f"{base}/namespaces/{{namespace}}/{t.plural}/{{name}}" if t.namespaced \
                else f"{base}/{t.plural}/{{name}}"
            coll = item.rsplit("/", 1)[0]
            op = {"x-kubernetes-group-version-kind": gvk, "parameters": params,
                  "responses": {"200": {"description": "OK"}}}
            if t.stored:
                paths[item] = {"get": {**op, "x-kubernetes-action": "get"},
                               "put": {**op, "x-kubernetes-action": "put"},
                               "patch": {**op, "x-kubernetes-action": "patch"},
                               "delete": {**op, "x-kubernetes-action": "delete"}}
            paths[coll] = {"post": {**op, "x-kubernetes-action": "post"}}
        info = {"title": "Kubernetes (kubeapi-double)", "version": SERVER_VERSION["gitVersion"]}
        return {"openapi": "3.0.0", "info": info,
                "paths": paths, "components": {"schemas": {}}}

    def api_group(self, group: str) -> dict:
        versions = self.groups().get(group)
        if not versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def api_group_list(self) -> dict:
        groups = []
        for g in sorted(self.groups()):
            info = self.api_group(g)
            info.pop("kind")
            info.pop("apiVersion")
            groups.append(info)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    # ---- request routing ---------------------------------------------------

    def handle(self, req: Request):
        """Answer one request: a Response, or a WatchStream for watches."""
        with self.lock:
            self.request_count += 1
            self._writing_dry_run = req.dry_run
            try:
                return self._route(req)
            finally:
                self._writing_dry_run = False

    def _route(self, req: Request):
        path = req.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/version":
            return Response(200, SERVER_VERSION)
        if parts[:2] == ["openapi", "v3"]:
            if len(parts) == 2:
                return Response(200, self.openapi_v3_index())
            if parts[2] == "api" and len(parts) == 4:
                return Response(200, self.openapi_v3_doc("", parts[3]))
            if parts[2] == "apis" and len(parts) == 5:
                return Response(200, self.openapi_v3_doc(parts[3], parts[4]))
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if parts and parts[0] == "_double":
            return self._route_double(req, parts[1:])
        if path == "/":
            return Response(200, {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz",
                                            "/version", "/_double/objects", "/_double/reset"]})
        if not parts or parts[0] not in ("api", "apis"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if parts[0] == "api":
            if len(parts) == 1:
                return Response(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}]})
            group, version, rest = "", parts[1], parts[2:]
            if version != "v1":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
        else:
            if len(parts) == 1:
                return Response(200, self.api_group_list())
            if len(parts) == 2:
                return Response(200, self.api_group(parts[1]))
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            return Response(200, self.api_resource_list(group, version))
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            if not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")):
                ns, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        rt = self.lookup(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced is False and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return self._dispatch(req, rt, version, ns, name, sub)

    def _body(self, req: Request):
        if not req.body:
            return {}
        try:
            return json.loads(req.body)
        except ValueError:
            if yaml is not None:
                try:
                    return yaml.safe_load(req.body)
                except yaml.YAMLError:
                    pass
            raise bad_request("the request body is not valid JSON") from None

    def _dispatch(self, req: Request, rt: ResType, version: str, ns, name, sub):
        m = req.method
        if rt.namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is not None:
            if sub == "status" and rt.status:
                if m == "GET":
                    return Response(200, self.get(rt, version, ns, name))
                if m == "PUT":
                    return Response(200, self.update(rt, version, ns, name, self._body(req), req, "status"))
                if m == "PATCH":
                    return Response(200, self.patch(rt, version, ns, name, req, "status"))
            elif sub == "scale" and rt.scale:
                if m in ("GET", "PUT", "PATCH"):
                    return Response(200, self.scale(rt, ns, name, req, version))
            elif sub == "token" and rt.group == "" and rt.plural == "serviceaccounts" and m == "POST":
                return Response(201, self.token_request(ns, name, self._body(req), req))
            elif sub == "finalize" and rt.kind == "Namespace" and m == "PUT":
                return Response(200, self.update(rt, version, ns, name, self._body(req), req))
            raise ApiError(404 if m == "GET" else 405, "NotFound" if m == "GET" else "MethodNotAllowed",
                           f"the server does not allow this method on the requested resource ({rt.plural}/{sub})")
        if name is None:
            if m == "GET":
                if req.flag("watch"):
                    return self.open_watch(rt, version, ns, req)
                return Response(200, self.list(rt, version, ns, req))
            if m == "POST":
                return Response(201, self.create(rt, version, ns, self._body(req), req))
            if m == "DELETE":
                return Response(200, self.delete_collection(rt, version, ns, req))
        else:
            if m == "GET":
                if req.flag("watch"):
                    req.query["fieldSelector"] = [f"metadata.name={name}"]
                    return self.open_watch(rt, version, ns, req)
                return Response(200, self.get(rt, version, ns, name))
            if m == "PUT":
                return Response(200, self.update(rt, version, ns, name, self._body(req), req))
            if m == "PATCH":
                before = self.objects.get((rt.group, rt.plural), {}).get((ns if rt.namespaced else None, name))
                out = self.patch(rt, version, ns, name, req)
                return Response(201 if before is None and not req.dry_run else 200, out)
            if m == "DELETE":
                return Response(200, self.delete(rt, version, ns, name, req))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _route_double(self, req: Request, parts: list):
        if parts == ["objects"] and req.method == "GET":
            objs = self.all_objects()
            kind = req.q("kind")
            nsq = req.q("namespace")
            if kind:
                objs = [o for o in objs if o.get("kind") == kind]
            if nsq:
                objs = [o for o in objs if o["metadata"].get("namespace") == nsq]
            return Response(200, {"cluster": self.name, "resourceVersion": str(self.rv), "count": len(objs),
                                  "objects": objs})
        if parts == ["reset"] and req.method == "POST":
            self.reset()
            return Response(200, {"cluster": self.name, "reset": True, "resourceVersion": str(self.rv)})
        if parts == ["stats"] and req.method == "GET":
            return Response(200, {"cluster": self.name, "requests": self.request_count,
                                  "objects": sum(len(b) for b in self.objects.values()),
                                  "events": len(self.events), "resourceVersion": str(self.rv)})
        raise ApiError(404, "NotFound", "unknown /_double endpoint (objects, reset, stats)")


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------


def _table(payload: dict, include: str) -> dict:
    items = payload["items"] if payload.get("kind", "").endswith("List") and "items" in payload else [payload]
    rows = []
    for obj in items:
        if include == "None":
            embedded = None
        elif include == "Object":
            embedded = obj
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append({"cells": [obj["metadata"]["name"], obj["metadata"].get("creationTimestamp")],
                     "object": embedded})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": payload.get("metadata", {}).get("resourceVersion", "")},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": "Creation timestamp", "priority": 0},
        ],
        "rows": rows,
    }


class KubeApiHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler; every answer is JSON (never protobuf)."""

    protocol_version = "HTTP/1.1"
    server_version = "kubeapi-double"
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format, *args):  # noqa: A002 - no request log (bounded memory)
        if self.server.verbose:
            sys.stderr.write("%s [%s] %s\n" % (self.server.store.name, self.log_date_time_string(), format % args))

    def _handle(self):
        store: ClusterStore = self.server.store
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, split.path, parse_qs(split.query, keep_blank_values=True), headers, body)
        try:
            resp = store.handle(req)
        except ApiError as err:
            resp = Response(err.code, err.status())
        except Exception as exc:  # noqa: BLE001 - answer 500 instead of dropping the connection
            traceback.print_exc()
            resp = Response(500, ApiError(500, "InternalError", f"kubeapi-double internal error: {exc!r}").status())
        if isinstance(resp, WatchStream):
            self._stream(resp)
            return
        payload = resp.body
        if isinstance(payload, dict) and "as=Table" in req.accept and req.method == "GET" and resp.code == 200 \
                and payload.get("kind") not in ("Status", "APIResourceList", "APIGroupList", "APIGroup",
                                                "APIVersions", None) and split.path.startswith(("/api/", "/apis/")):
            payload = _table(payload, req.q("includeObject") or "Metadata")
        self._send(resp.code, payload, resp.content_type)

    def _send(self, code: int, payload, content_type: str = "application/json"):
        if isinstance(payload, bytes):
            data = payload
        else:
            data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        head = (f"HTTP/1.1 {code} {self.responses.get(code, ('', ''))[0]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(data)}\r\n"
                f"Cache-Control: no-cache, private\r\n"
                f"Audit-Id: {uuid.uuid4()}\r\n"
                f"Date: {self.date_time_string()}\r\n"
                f"X-Kubernetes-Pf-Flowschema-Uid: kubeapi-double\r\n"
                "\r\n").encode("latin-1")
        if self.close_connection:
            head = head[:-2] + b"Connection: close\r\n\r\n"
        self.wfile.write(head + data)

    def _client_gone(self) -> bool:
        try:
            ready, _w, _x = select.select([self.connection], [], [], 0)
            if ready:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
        return False

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _stream(self, stream: WatchStream):
        head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                f"Cache-Control: no-cache, private\r\nDate: {self.date_time_string()}\r\n\r\n").encode("latin-1")
        store = stream.store
        try:
            self.wfile.write(head)
            for ev in stream.initial:
                self._chunk(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
            deadline = time.monotonic() + stream.timeout
            last_bookmark = time.monotonic()
            while not store.stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                events = store.watch_events(stream, min(remaining, 1.0))
                for ev in events:
                    self._chunk(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
                if not events:
                    if self._client_gone():
                        self.close_connection = True
                        return
                    if stream.bookmarks and time.monotonic() - last_bookmark > 10:
                        last_bookmark = time.monotonic()
                        bm = {"type": "BOOKMARK", "object": {"kind": stream.rt.kind,
                                                             "apiVersion": stream.rt.api_version(stream.version),
                                                             "metadata": {"resourceVersion": str(stream.last_rv)}}}
                        self._chunk(json.dumps(bm).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle


class KubeApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, store: ClusterStore, verbose: bool = False):
        self.store = store
        self.verbose = verbose
        super().__init__(address, KubeApiHandler)


# --------------------------------------------------------------------------
# running clusters
# --------------------------------------------------------------------------


def kubeconfig_text(name: str, server: str) -> str:
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "# kubeapi-double: a test double of the Kubernetes API (tests/doubles/kubeapi_double.py)\n"
        f"current-context: {json.dumps(name)}\n"
        "preferences: {}\n"
        "clusters:\n"
        f"- name: {json.dumps(name)}\n"
        "  cluster:\n"
        f"    server: {json.dumps(server)}\n"
        "contexts:\n"
        f"- name: {json.dumps(name)}\n"
        "  context:\n"
        f"    cluster: {json.dumps(name)}\n"
        f"    user: {json.dumps(name)}\n"
        "    namespace: default\n"
        "users:\n"
        f"- name: {json.dumps(name)}\n"
        "  user:\n"
        f"    token: {json.dumps('kubeapi-double-' + name)}\n"
    )


def forget_client_caches(server: str) -> None:
    """Remove discovery caches that clients keep for ``server`` (a reused port would make them stale).

    The kubernetes Python client caches discovery in
    ``$TMPDIR/osrcp-<md5(server)>.json``; kubectl in
    ``~/.kube/cache/discovery/<host>_<port>``. A fresh emulated cluster on a
    port some earlier run used must not inherit that run's custom kinds.
    """
    import shutil
    import tempfile

    digest = hashlib.md5(server.encode("utf-8")).hexdigest()  # noqa: S324 - the client's cache naming
    try:
        os.unlink(os.path.join(tempfile.gettempdir(), f"osrcp-{digest}.json"))
    except OSError:
        pass
    host_port = urlsplit(server).netloc.replace(":", "_")
    kube_cache = os.environ.get("KUBECACHEDIR") or os.path.join(os.path.expanduser("~"), ".kube", "cache")
    shutil.rmtree(os.path.join(kube_cache, "discovery", host_port), ignore_errors=True)


def _write_atomic(path: str, text: str):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


@dataclass
class RunningCluster:
    name: str
    port: int
    server: str
    kubeconfig: str
    store: ClusterStore
    httpd: KubeApiServer = field(repr=False)
    thread: threading.Thread = field(repr=False)

    def info(self) -> dict:
        return {"port": self.port, "server": self.server, "kubeconfig": self.kubeconfig}


class DoubleHandle:
    """Clusters started in-process by :func:`start_clusters`."""

    def __init__(self, state_dir: str, clusters: dict):
        self.state_dir = state_dir
        self.clusters: dict = clusters

    def __getitem__(self, name: str) -> RunningCluster:
        return self.clusters[name]

    def __iter__(self):
        return iter(self.clusters.values())

    def info(self) -> dict:
        return {name: c.info() for name, c in self.clusters.items()}

    def objects(self, cluster: str) -> list:
        return self.clusters[cluster].store.all_objects()

    def stop(self):
        for c in self.clusters.values():
            c.store.stop()
        for c in self.clusters.values():
            c.httpd.shutdown()
            c.httpd.server_close()
            c.thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_clusters(names, state_dir, host: str = "127.0.0.1", verbose: bool = False,
                   rollout_seconds: float = 0.0) -> DoubleHandle:
    """Start one emulated cluster per name on free ports; write kubeconfigs and clusters.json.

    ``rollout_seconds`` > 0 makes workloads report ready that long after each
    rollout starts instead of at once (see ``ClusterStore.rollout_pending``).
    """
    names = list(names)
    if not names or len(set(names)) != len(names):
        raise ValueError("cluster names must be unique and non-empty")
    state_dir = os.path.abspath(str(state_dir))
    os.makedirs(state_dir, exist_ok=True)
    clusters_json = os.path.join(state_dir, "clusters.json")
    if os.path.exists(clusters_json):
        os.unlink(clusters_json)
    started: dict = {}
    try:
        for name in names:
            store = ClusterStore(name, rollout_seconds=rollout_seconds)
            httpd = KubeApiServer((host, 0), store, verbose=verbose)
            port = httpd.server_address[1]
            store.server_address = f"{host}:{port}"
            thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                      name=f"kubeapi-double-{name}", daemon=True)
            thread.start()
            server = f"http://{host}:{port}"
            forget_client_caches(server)
            kubeconfig = os.path.join(state_dir, f"{name}.kubeconfig")
            _write_atomic(kubeconfig, kubeconfig_text(name, server))
            os.chmod(kubeconfig, 0o600)
            started[name] = RunningCluster(name, port, server, kubeconfig, store, httpd, thread)
    except BaseException:
        DoubleHandle(state_dir, started).stop()
        raise
    return DoubleHandle(state_dir, started)


def write_clusters_json(handle: DoubleHandle):
    _write_atomic(os.path.join(handle.state_dir, "clusters.json"), json.dumps(handle.info(), indent=2) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Kubernetes API test double (in-memory emulator, plain HTTP).")
    parser.add_argument("--state-dir", required=True, help="where kubeconfigs, clusters.json and the pid file go")
    parser.add_argument("--cluster", action="append", required=True, help="cluster name (repeat for more)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    parser.add_argument("--rollout-seconds", type=float, default=0.0,
                        help="emulated controller latency: workloads report ready this long after a rollout starts "
                             "(a create or a generation change; default 0, at once)")
    args = parser.parse_args(argv)
    if args.rollout_seconds < 0:
        parser.error("--rollout-seconds must be >= 0")

    stop = threading.Event()

    def _on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    handle = start_clusters(args.cluster, args.state_dir, host=args.host, verbose=args.verbose,
                            rollout_seconds=args.rollout_seconds)
    pid_file = os.path.join(handle.state_dir, "kubeapi.pid")
    _write_atomic(pid_file, f"{os.getpid()}\n")
    write_clusters_json(handle)
    for c in handle:
        print(f"kubeapi-double: cluster {c.name} at {c.server} (kubeconfig {c.kubeconfig})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
        try:
            os.unlink(pid_file)
        except FileNotFoundError:
            pass
        print("kubeapi-double: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
