"""Unit tests for plugins/module_utils/helm.py (pending Helm release records)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.helm import duration_seconds, pending_records

NOW = 1_800_000_000.0


def record(revision: int, status: str, modified_at=None, created=None, name="kube-prometheus-stack") -> dict:
    labels = {"owner": "helm", "name": name, "version": str(revision), "status": status}
    if modified_at is not None:
        labels["modifiedAt"] = str(int(modified_at))
    meta = {"name": f"sh.helm.release.v1.{name}.v{revision}", "namespace": "monitoring", "labels": labels}
    if created:
        meta["creationTimestamp"] = created
    return {"metadata": meta, "data": {"release": "H4sI-secret-values"}}


@pytest.mark.parametrize(("text", "seconds"), [
    ("10m0s", 600), ("15m", 900), ("300s", 300), ("1h30m", 5400), ("1h0m10s", 3610), ("500ms", 0.5),
    ("2.5m", 150), ("90", 90), (45, 45), (1.5, 1.5),
])
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "5d", "m", True])
def test_duration_seconds_refuses_what_is_not_a_duration(text):
    if text == "10":
        assert duration_seconds(text) == 10
        return
    with pytest.raises(NGA4MError, match="is not a duration: give e.g. 10m0s"):
        duration_seconds(text)


def test_pending_records_flags_only_stale_pending_revisions():
    secrets = [
        record(1, "superseded", NOW - 9000),
        record(2, "deployed", NOW - 8000),
        record(3, "pending-upgrade", NOW - 700),   # 700 s > 600 s timeout + 60 s grace: stale
        record(4, "pending-install", NOW - 100, name="other"),
    ]
    out = pending_records(secrets, "10m0s", NOW)
    assert [(r["revision"], r["status"], r["age"], r["stale"]) for r in out] == [(3, "pending-upgrade", 700, True), (4, "pending-install", 100, False)]
    assert out[0]["name"] == "sh.helm.release.v1.kube-prometheus-stack.v3" and out[0]["namespace"] == "monitoring"
    assert all("data" not in r and "H4sI" not in str(r) for r in out)  # the values never leave the filter


def test_pending_records_at_the_edge_and_with_a_grace():
    secrets = [record(1, "pending-install", NOW - 660)]
    assert pending_records(secrets, "10m", NOW)[0]["stale"] is False  # exactly timeout + grace: not yet
    assert pending_records(secrets, "10m", NOW, grace=0)[0]["stale"] is True
    assert pending_records(secrets, "10m", NOW, grace="0")[0]["stale"] is True  # an extra var arrives as text


def test_pending_records_fall_back_to_the_creation_time_and_never_guess():
    created = datetime.fromtimestamp(NOW - 200, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = pending_records([record(1, "pending-rollback", created=created)], "1m", NOW)
    assert (found[0]["age"], found[0]["stale"]) == (200, True)
    unknown = pending_records([record(1, "pending-install")], "1m", NOW)
    assert unknown == [{"name": "sh.helm.release.v1.kube-prometheus-stack.v1", "namespace": "monitoring",
                        "release": "kube-prometheus-stack", "revision": 1, "status": "pending-install", "age": None, "stale": False}]


def test_pending_records_ignores_what_is_not_a_helm_record():
    assert pending_records([{"metadata": {"labels": {"status": "pending-install"}}}, "junk", {}], "1m", NOW) == []
    assert pending_records(None, "1m", NOW) == []
