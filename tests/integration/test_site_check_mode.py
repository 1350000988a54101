"""site.yml on the emulated bed (TEST DOUBLES): --check --diff touches nothing and shows the diffs, then converge is idempotent.

A fresh bed (``tools/bed start``: the Kubernetes API double with clusters pc,
sc1, sc2, and the helm double's state dir) is started for this module and
stopped afterwards. ``inventories/demo`` reads the kubeconfigs from
``NGA4M_BED_DIR``. Cluster state is compared through the double's debug
endpoint ``GET /_double/objects``. The node hosts use the SSH method on local
stand-ins (``ansible_connection: local``, ``sysctl_tuning_reload: false``), so
this machine's own inotify limits in /proc/sys must not change.
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
CLUSTER_HOSTS = ("pc1", "sc1", "sc2")
# The CI machine's own values of the keys sysctl_tuning sets (must never change here).
KERNEL_KEYS = ("fs/inotify/max_user_instances", "fs/inotify/max_user_watches")


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


def _kernel() -> dict:
    return {key: Path("/proc/sys", key).read_text().strip() for key in KERNEL_KEYS}


def _diff(run, task_name: str, host: str) -> dict:
    res = run.result(task_name, host)
    assert res.get("diff"), f"{task_name} on {host}: no diff in the --check --diff result: {sorted(res)}"
    return res["diff"]


def _assert_check_shows_diffs(run, state: Path) -> None:
    """--check --diff shows what would change: before/after of known objects and files."""
    for host in CLUSTER_HOSTS:
        diff = _diff(run, "Ensure the platform namespace exists", host)
        assert diff["before"] == {}, (host, diff["before"])  # a new object: nothing before
        after = diff["after"]
        assert (after["kind"], after["metadata"]["name"]) == ("Namespace", "nga4m-system"), (host, after)
        labels = after["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "nga4m.platform", (host, labels)
        assert labels["nga4m.io/cluster"] == host, (host, labels)
        assert labels["nga4m.io/cluster-role"] == ("primary" if host == "pc1" else "secondary"), (host, labels)
    mlflow_ns = _diff(run, "nga4m.platform.mlflow : Namespace", "pc1")
    assert mlflow_ns["before"] == {} and mlflow_ns["after"]["kind"] == "Namespace", mlflow_ns
    for node in NODES:
        diff = _diff(run, "nga4m.platform.sysctl_tuning : Ensure the directory of the sysctl file exists", node)
        assert diff["before"] == {"path": str(state / "nodes" / node / "sysctl.d"), "state": "absent"}, (node, diff)
        assert diff["after"]["state"] == "directory", (node, diff)
    # sc2 (daemonset method): the DaemonSet cannot be dry-run into a namespace that does not exist
    # yet, so the role reports it instead.
    report = run.result("nga4m.platform.sysctl_tuning : Report the DaemonSet that would be created with its namespace", "sc2")
    assert report["changed"] is True
    assert "DaemonSet nga4m-system/nga4m-sysctl-tuning" in report["msg"], report
    with_diff = [
        (task["task"]["name"], host)
        for play in run.data.get("plays", [])
        for task in play.get("tasks", [])
        for host, res in task.get("hosts", {}).items()
        if res.get("changed") and res.get("diff")
    ]
    assert len(with_diff) >= len(CLUSTER_HOSTS) + len(NODES) + 1, with_diff


def _site(state: Path, **kw):
    return run_playbook(SITE, inventory=DEMO, env=_env(state), args=["--forks", "10"], **kw)


def test_check_diff_changes_nothing_then_converge_is_idempotent(bed):
    before = _objects(bed)
    kernel = _kernel()

    check = _site(bed, check=True, diff=True)
    assert check.rc == 0, check.stdout[-6000:] + check.stderr[-3000:]
    assert check.changed_total() > 0, "check mode on fresh clusters must report what would change"
    ns = check.result("Ensure the platform namespace exists", "sc1")
    assert ns["changed"] is True
    _assert_check_shows_diffs(check, bed)
    assert _objects(bed) == before, "check mode changed objects in a cluster"
    assert not any((bed / "nodes" / n).exists() for n in NODES), "check mode wrote a node's sysctl file"
    assert _kernel() == kernel, "check mode changed this machine's kernel settings"

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
    # The SSH method ran on the local stand-in nodes: this machine's kernel is untouched.
    assert _kernel() == kernel, "converging with the SSH method on the local stand-in nodes changed this machine's kernel"

    second = _site(bed)
    assert second.rc == 0, second.stdout[-6000:]
    assert second.changed_total() == 0, {h: s for h, s in second.stats.items() if s.get("changed")}
    converged = _objects(bed)

    recheck = _site(bed, check=True, diff=True)
    assert recheck.rc == 0, recheck.stdout[-6000:]
    assert recheck.changed_total() == 0, {h: s for h, s in recheck.stats.items() if s.get("changed")}
    assert _objects(bed) == converged
    assert _kernel() == kernel, "a re-converge or re-check changed this machine's kernel settings"
