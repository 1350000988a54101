# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helm release records: find a revision left pending by an interrupted helm operation.

Helm 3 stores each revision of a release as a Secret ``sh.helm.release.v1.<name>.v<revision>``
labelled ``owner=helm``, ``name``, ``version``, ``status`` and ``modifiedAt`` (Unix seconds).
An install or upgrade writes its revision as ``pending-install``/``pending-upgrade`` and marks
it ``deployed`` or ``failed`` when it ends. When helm dies (killed, or its API server went away
during ``--wait``) the revision stays pending, and every later ``helm upgrade --install`` fails
with "another operation (install/upgrade/rollback) is in progress". A pending revision older
than the operation's timeout cannot belong to a helm that is still running; deleting its
record lets the next run continue from the last deployed revision (or install afresh, adopting
the objects already labelled with the release).
"""

from __future__ import annotations

import re

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError

PENDING = ("pending-install", "pending-upgrade", "pending-rollback")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")


def duration_seconds(value) -> float:
    """Seconds of a helm (Go) duration such as ``10m0s``, ``15m``, ``90s``, ``1h30m``; a number is seconds."""
    if isinstance(value, bool):
        raise NGA4MError(f"'{value}' is not a duration: give e.g. 10m0s, 15m or 300s")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = _DURATION.match(text)
    if not text or not match or not any(match.groups()):
        raise NGA4MError(f"'{value}' is not a duration: give e.g. 10m0s, 15m or 300s")
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _timestamp(modified_at, created) -> float | None:
    try:
        return float(modified_at)
    except (TypeError, ValueError):
        pass
    if created:
        from datetime import datetime  # noqa: PLC0415 - only for records without modifiedAt

        try:
            return datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def pending_records(secrets: list, timeout, now: float, grace: float = 60.0) -> list[dict]:
    """The pending revision records among a release's Secrets, each with its age and whether it is stale.

    ``secrets``: Secret objects (as kubernetes.core.k8s_info returns them) labelled owner=helm.
    ``timeout``: the helm operation timeout (duration); a record is stale when it has been pending
    longer than ``timeout`` + ``grace`` seconds at ``now`` (Unix seconds).
    Returns ``[{name, namespace, release, revision, status, age, stale}]``, oldest revision first;
    nothing of a Secret's data.
    """
    limit = duration_seconds(timeout) + duration_seconds(grace)
    out = []
    for secret in secrets or []:
        meta = secret.get("metadata", {}) if isinstance(secret, dict) else {}
        labels = meta.get("labels") or {}
        if labels.get("owner") != "helm" or labels.get("status") not in PENDING:
            continue
        modified = _timestamp(labels.get("modifiedAt"), meta.get("creationTimestamp"))
        age = max(0.0, float(now) - modified) if modified is not None else None
        out.append({
            "name": meta.get("name", ""), "namespace": meta.get("namespace", ""), "release": labels.get("name", ""),
            "revision": int(labels.get("version", "0") or 0), "status": labels["status"],
            # no modifiedAt label (older helm): the Secret's creation time; neither: unknown age, never stale
            "age": round(age) if age is not None else None, "stale": age is not None and age > limit,
        })
    return sorted(out, key=lambda r: r["revision"])
