"""Read what the helm TEST DOUBLE recorded (``tests/doubles/helm_double/helm``).

The double is not helm: it never fetches or renders a chart and never talks to
a Kubernetes API server. It records, per cluster / namespace / release, the
chart reference, version and the merged user-supplied values that each
``helm upgrade --install`` was given, so tests can assert them.

State layout under ``$HELM_DOUBLE_STATE_DIR``::

    repositories.json                      # [{name, url, ...}] from `helm repo add`
    invocations.jsonl                      # one JSON line per helm call (argv, cwd, rc, time)
    .lock                                  # flock held by every helm call
    <cluster-key>/<namespace>/<release>/
        release.json                       # {name, namespace, cluster_key, cluster_server, revisions: [...]}
        values.yaml                        # user-supplied values of the latest revision

The cluster key is the API server URL of the selected kubeconfig context (or
``--kube-apiserver``), sanitized to a directory name by :func:`cluster_key`.

This module is also imported by the ``helm`` double itself, so the layout is
defined once; it imports pathlib only in the readers the double does not call
(start-up cost of every helm call).
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:  # annotations only
    from pathlib import Path

RELEASE_FILE = "release.json"
VALUES_FILE = "values.yaml"
REPOSITORIES_FILE = "repositories.json"
INVOCATIONS_FILE = "invocations.jsonl"
STATE_ENV = "HELM_DOUBLE_STATE_DIR"


def cluster_key(server: str) -> str:
    """Directory name for an API server URL: ``http://127.0.0.1:1`` -> ``http_127.0.0.1_1``."""
    key = re.sub(r"[^A-Za-z0-9.-]+", "_", server.strip()).strip("_.")
    if not key:
        raise ValueError(f"cannot derive a cluster key from server {server!r}")
    return key


def load_kubeconfig(paths) -> dict:
    """Merge kubeconfig files the way client-go does (first file wins per name)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [p for p in str(paths).split(os.pathsep) if p]
    merged: dict = {"clusters": {}, "contexts": {}, "current-context": None}
    for path in paths:
        path = os.path.expanduser(str(path))
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
        if not isinstance(doc, dict):
            continue
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for kind in ("clusters", "contexts"):
            for item in doc.get(kind) or []:
                if isinstance(item, dict) and item.get("name") and item["name"] not in merged[kind]:
                    merged[kind][item["name"]] = item.get(kind[:-1]) or {}
    return merged


def server_for_kubeconfig(kubeconfig, context: str | None = None) -> str:
    """API server URL of ``context`` (default: current-context) in ``kubeconfig``."""
    cfg = load_kubeconfig(kubeconfig)
    name = context or cfg["current-context"]
    if not name:
        raise LookupError(f"kubeconfig {kubeconfig} has no current-context and no context was given")
    ctx = cfg["contexts"].get(name)
    if ctx is None:
        raise LookupError(f'context "{name}" does not exist')
    cluster = cfg["clusters"].get(ctx.get("cluster"))
    if not cluster or not cluster.get("server"):
        raise LookupError(f'context "{name}" points at cluster {ctx.get("cluster")!r} which has no server')
    return cluster["server"]


def cluster_key_for_kubeconfig(kubeconfig, context: str | None = None) -> str:
    """Cluster key the double uses for ``kubeconfig`` (and optional context)."""
    return cluster_key(server_for_kubeconfig(kubeconfig, context))


def release_dir(state_dir, key: str, namespace: str, name: str) -> Path:
    from pathlib import Path  # noqa: PLC0415 - not at module level: start-up cost of every helm double call

    return Path(state_dir) / key / namespace / name


def _read_release(path: Path) -> dict:
    with open(path / RELEASE_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def _summary(doc: dict) -> dict:
    cur = doc["revisions"][-1]
    return {
        "cluster_key": doc["cluster_key"],
        "cluster_server": doc.get("cluster_server"),
        "namespace": doc["namespace"],
        "name": doc["name"],
        "chart": cur["chart"]["name"],
        "chart_ref": cur["chart"]["ref"],
        "repo_url": cur["chart"].get("repo_url"),
        "version": cur["chart"]["version"],
        "app_version": cur["chart"].get("appVersion") or "",
        "values": cur["values"],
        "revision": cur["revision"],
        "status": cur["status"],
        "description": cur.get("description", ""),
        "flags": cur.get("flags", {}),
        "history": [
            {k: r[k] for k in ("revision", "status", "description")} | {"values": r["values"]}
            for r in doc["revisions"]
        ],
    }


def releases(state_dir) -> list[dict]:
    """Every recorded release (latest revision), sorted by cluster, namespace, name."""
    from pathlib import Path  # noqa: PLC0415 - see release_dir

    root = Path(state_dir)
    out = []
    if not root.is_dir():
        return out
    for rel in sorted(root.glob(f"*/*/*/{RELEASE_FILE}")):
        out.append(_summary(_read_release(rel.parent)))
    return out


def release(state_dir, key: str, namespace: str, name: str) -> dict:
    """The latest revision of one release: chart, chart_ref, version, app_version,
    values (merged user-supplied values), revision, status, flags, history.

    Raises ``KeyError`` listing what is recorded when the release does not exist
    (an uninstalled release without ``--keep-history`` does not exist).
    """
    path = release_dir(state_dir, key, namespace, name)
    if not (path / RELEASE_FILE).is_file():
        known = [f"{r['cluster_key']}/{r['namespace']}/{r['name']}" for r in releases(state_dir)]
        raise KeyError(f"no release {key}/{namespace}/{name} recorded by the helm double; recorded: {known}")
    return _summary(_read_release(path))


def repositories(state_dir) -> list[dict]:
    path = os.path.join(state_dir, REPOSITORIES_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def invocations(state_dir) -> list[dict]:
    """Every helm call the double saw: {time, argv, cwd, rc, env} (secrets redacted)."""
    path = os.path.join(state_dir, INVOCATIONS_FILE)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
