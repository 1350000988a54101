"""tools/bed starts real control planes and leaves no process behind.

Every process the bed starts (etcd, each cluster's kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, the chart repository, MinIO, the runner and the programs it runs)
carries ``NGA4M_BED_OWNER=<state dir>`` in its environment; ``tools/bed status`` exits 0
when every recorded process runs, 4 when only some do (listing them), 3 when none does;
``tools/bed stop`` also kills those that left what it recorded. ``start-s3`` (used by the
kind scenario) starts only the S3 server and writes the same ``s3.json``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.helpers.kubebed import bin_dir
from tests.helpers.playbook import REPO

BED = REPO / "tools" / "bed"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "minio")


def _bed(*args: str, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed argv
        [str(BED), *args, "--state-dir", str(state)], capture_output=True, text=True, check=False, timeout=300
    )


def _marked(state: Path) -> dict[int, str]:
    """Live processes carrying the bed's marker for ``state`` (pid -> command line)."""
    marker = f"NGA4M_BED_OWNER={state}".encode()
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
                continue
            if marker in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, IndexError):
            continue
    return out


def _naming(state: Path) -> dict[int, str]:
    """Live processes (not this one) whose command line names ``state``."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(state) in cmd:
            out[int(entry)] = cmd.strip()
    return out


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
                return
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive after {timeout}s")


def _binaries(procs: dict) -> list[str]:
    return sorted(Path(cmd.split(" ", 1)[0]).name for cmd in procs.values())


def test_start_then_stop_leaves_nothing_running(tmp_path):
    state = tmp_path / "bed"
    start = _bed("start", state=state)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        status = _bed("status", state=state)
        assert status.returncode == 0 and "bed: running" in status.stdout, status.stdout + status.stderr
        for cluster in ("pc", "sc1", "sc2"):
            assert f"{state}/{cluster}.kubeconfig" in status.stdout, status.stdout
        started = _marked(state)
        binaries = _binaries(started)
        for name in CONTROL_PLANE:
            assert name in binaries, binaries
        # one API server, controller manager, scheduler and kwok per cluster; one etcd for the bed
        assert [binaries.count(b) for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")] == [1, 3, 3, 3, 3]
        assert any("tests.helpers.bed_runner" in cmd for cmd in started.values()), started
        assert any("http.server" in cmd for cmd in started.values()), started
        # The pinned kubectl reaches the cluster with the kubeconfig the bed wrote, as admin.
        nodes = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(state / "sc1.kubeconfig"), "get", "nodes", "-o", "name"],
                               capture_output=True, text=True, check=False, timeout=60)
        assert nodes.stdout.split() == ["node/sc1-node1", "node/sc1-node2"], nodes.stdout + nodes.stderr
        assert "export NGA4M_BED_DIR=" in (state / "env.sh").read_text()
    finally:
        stop = _bed("stop", state=state)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    status = _bed("status", state=state)
    assert status.returncode == 3, status.stdout + status.stderr
    assert "no process it started is alive" in status.stdout
    assert _marked(state) == {}
    assert _naming(state) == {}
    for pid in started:
        assert not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes(), pid
    assert not (state / "s3.json").exists()


def test_status_names_leftovers_and_stop_kills_an_escaped_process(tmp_path):
    state = tmp_path / "bed"
    start = _bed("start", "--clusters", "pc", state=state)
    escaped = None
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        # A process the bed started that left what it recorded (own session), like a daemonizing child.
        escaped = subprocess.Popen(  # noqa: S603
            ["sleep", "300"], env={**os.environ, "NGA4M_BED_OWNER": str(state)}, start_new_session=True
        )
        # The API server dies on its own: the rest of the bed and the escaped process are left.
        apiserver = json.loads((state / "bed.json").read_text())["clusters"]["pc"]["pids"]["kube-apiserver"]
        os.kill(apiserver, 9)
        _wait_gone(apiserver)
        status = _bed("status", state=state)
        assert status.returncode == 4, status.stdout + status.stderr
        assert "partly running" in status.stdout and "pc/kube-apiserver" in status.stdout, status.stdout
        assert "etcd" in status.stdout and f"{escaped.pid}\tsleep 300" in status.stdout, status.stdout

        stop = _bed("stop", state=state)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert f"{escaped.pid}\tsleep 300" in stop.stderr, stop.stderr
        assert escaped.wait(timeout=10) != 0  # killed, not finished
        status = _bed("status", state=state)
        assert status.returncode == 3, status.stdout + status.stderr
        assert _marked(state) == {}
    finally:
        if escaped is not None and escaped.poll() is None:
            escaped.kill()
            escaped.wait()
        _bed("stop", state=state)


def test_start_s3_only_writes_the_bed_s3_json(tmp_path):
    state = tmp_path / "bed"
    start = _bed("start-s3", "--s3-host", "127.0.0.1", state=state)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        s3 = json.loads((state / "s3.json").read_text())
        assert set(s3) == {"endpoint", "secure", "region", "access_key", "secret_key"}
        host, port = s3["endpoint"].rsplit(":", 1)
        assert host == "127.0.0.1" and port.isdigit()
        assert s3["secure"] is False and s3["region"] == "us-east-1"
        assert stat.S_IMODE((state / "s3.json").stat().st_mode) == 0o600
        with urllib.request.urlopen(f"http://{s3['endpoint']}/minio/health/ready", timeout=5) as resp:  # noqa: S310 - loopback
            assert resp.status == 200
        assert not (state / "clusters.json").exists() and not (state / "env.sh").exists()
        assert _binaries(_marked(state)) == ["minio"]
        again = _bed("start-s3", state=state)
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
        assert json.loads((state / "s3.json").read_text()) == s3
        status = _bed("status", state=state)
        assert status.returncode == 0 and s3["endpoint"] in status.stdout, status.stdout + status.stderr
    finally:
        stop = _bed("stop", state=state)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert _bed("status", state=state).returncode == 3
    assert _marked(state) == {}
    assert not (state / "s3.json").exists()


def test_bad_options_are_refused_before_anything_starts(tmp_path):
    state = tmp_path / "bed"
    for bad, message in (
        (("--pod-ready-seconds", "soon"), "invalid float value: 'soon'"),
        (("--pod-ready-seconds", "-1"), "--pod-ready-seconds takes seconds >= 0, got -1.0"),
        (("--clusters", "pc,Bad_Name"), "Bad_Name are not DNS-1123 labels"),
        (("--clusters", "pc,pc"), "names a cluster twice"),
    ):
        run = _bed("start", *bad, state=state)
        assert run.returncode == 2, run.stdout + run.stderr
        assert message in run.stderr, run.stderr
        assert not state.exists()


def test_pod_ready_seconds_delay_the_real_rollout(tmp_path):
    """kwok's stage delay (--pod-ready-seconds): a Deployment is available only that long after it was created."""
    state = tmp_path / "bed"
    start = _bed("start", "--clusters", "pc", "--pod-ready-seconds", "3", state=state)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        kubectl = [str(bin_dir() / "kubectl"), "--kubeconfig", str(state / "pc.kubeconfig")]
        created = time.monotonic()
        subprocess.run([*kubectl, "create", "deployment", "web", "--image", "nginx", "--replicas", "2"],
                       check=True, capture_output=True, timeout=60)
        rollout = subprocess.run([*kubectl, "rollout", "status", "deployment/web", "--timeout", "60s"],
                                 capture_output=True, text=True, check=False, timeout=90)
        took = time.monotonic() - created
        assert rollout.returncode == 0, rollout.stdout + rollout.stderr
        assert "successfully rolled out" in rollout.stdout
        assert took >= 3, took
    finally:
        stop = _bed("stop", state=state)
    assert stop.returncode == 0, stop.stdout + stop.stderr
