"""site.yml on the emulated bed (TEST DOUBLES): --check --diff touches nothing, then converge is idempotent.

A fresh bed (``tools/bed start``: the Kubernetes API double with clusters pc,
sc1, sc2, and the helm double's state dir) is started for this module and
stopped afterwards. ``inventories/demo`` reads the kubeconfigs from
``NGA4M_BED_DIR``. Cluster state is compared through the double's debug
endpoint ``GET /_double/objects``.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.playbook import REPO, run_playbook

BED = REPO / "tools" / "bed"
SITE = REPO / "site.yml"
DEMO = REPO / "inventories" / "demo"
NODES = ("pc1-node1", "sc1-node1", "sc1-node2")


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    state = tmp_path_factory.mktemp("bed")
    start = subprocess.run([str(BED), "start", "--state-dir", str(state)], capture_output=True, text=True, check=False)  # noqa: S603
    if start.returncode != 0:
        pytest.fail(f"tools/bed start failed:\n{start.stdout}\n{start.stderr}")
    try:
        yield state
    finally:
        subprocess.run([str(BED), "stop", "--state-dir", str(state)], capture_output=True, check=False)  # noqa: S603


def _env(state: Path) -> dict:
    helm_dir = REPO / "tests" / "doubles" / "helm_double"
    return {
        "NGA4M_BED_DIR": str(state),
        "HELM_DOUBLE_STATE_DIR": str(state / "helm"),
        "PATH": os.pathsep.join([str(helm_dir), str(REPO / ".venv" / "bin"), os.environ.get("PATH", "")]),
    }


def _objects(state: Path) -> dict:
    clusters = json.loads((state / "clusters.json").read_text())
    out = {}
    for name, info in clusters.items():
        with urllib.request.urlopen(info["server"] + "/_double/objects", timeout=10) as resp:  # noqa: S310 - loopback
            out[name] = json.load(resp)
    return out


def _names(dump: dict, kind: str) -> set:
    return {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in dump["objects"] if o["kind"] == kind}


def _site(state: Path, **kw):
    return run_playbook(SITE, inventory=DEMO, env=_env(state), args=["--forks", "10"], **kw)


def test_check_diff_changes_nothing_then_converge_is_idempotent(bed):
    before = _objects(bed)

    check = _site(bed, check=True, diff=True)
    assert check.rc == 0, check.stdout[-6000:] + check.stderr[-3000:]
    assert check.changed_total() > 0, "check mode on fresh clusters must report what would change"
    ns = check.result("Ensure the platform namespace exists", "sc1")
    assert ns["changed"] is True
    assert _objects(bed) == before, "check mode changed objects in a cluster"
    assert not any((bed / "nodes" / n).exists() for n in NODES), "check mode wrote a node's sysctl file"

    first = _site(bed)
    assert first.rc == 0, first.stdout[-6000:] + first.stderr[-3000:]
    assert first.changed_total() > 0
    after = _objects(bed)
    for cluster in ("pc", "sc1", "sc2"):
        assert (None, "nga4m-system") in _names(after[cluster], "Namespace"), cluster
    assert ("nga4m-system", "nga4m-sysctl-tuning") in _names(after["sc2"], "DaemonSet")
    assert not _names(after["sc1"], "DaemonSet") & {("nga4m-system", "nga4m-sysctl-tuning")}
    for node in NODES:
        text = (bed / "nodes" / node / "sysctl.d" / "90-nga4m.conf").read_text()
        assert "fs.inotify.max_user_instances=2280" in text
        assert "fs.inotify.max_user_watches=1255360" in text

    second = _site(bed)
    assert second.rc == 0, second.stdout[-6000:]
    assert second.changed_total() == 0, {h: s for h, s in second.stats.items() if s.get("changed")}
    converged = _objects(bed)

    recheck = _site(bed, check=True, diff=True)
    assert recheck.rc == 0, recheck.stdout[-6000:]
    assert recheck.changed_total() == 0, {h: s for h, s in recheck.stats.items() if s.get("changed")}
    assert _objects(bed) == converged
