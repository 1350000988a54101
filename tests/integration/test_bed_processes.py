"""tools/bed leaves no process behind (TEST DOUBLES: the kube API double and moto's S3 server).

Every process the bed starts carries ``NGA4M_BED_OWNER=<state dir>`` in its
environment; ``tools/bed status`` exits 3 only when none of them is alive (4
when the API double is gone but another one is), and ``tools/bed stop`` also
kills those that left their process group. ``start-s3`` (used by the kind
scenario) starts only the S3 server and writes the same ``s3.json``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.helpers.playbook import REPO

BED = REPO / "tools" / "bed"


def _bed(*args: str, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed argv
        [str(BED), *args, "--state-dir", str(state)], capture_output=True, text=True, check=False, timeout=120
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


def test_start_then_stop_leaves_nothing_running(tmp_path):
    state = tmp_path / "bed"
    start = _bed("start", state=state)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        status = _bed("status", state=state)
        assert status.returncode == 0 and "bed: running" in status.stdout, status.stdout + status.stderr
        started = _marked(state)
        cmds = " | ".join(started.values())
        assert "kubeapi_double.py" in cmds and "moto_server" in cmds, started
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
    start = _bed("start", state=state)
    escaped = None
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        # A process the bed started that left its process group (own session), like a daemonizing child.
        escaped = subprocess.Popen(  # noqa: S603
            ["sleep", "300"], env={**os.environ, "NGA4M_BED_OWNER": str(state)}, start_new_session=True
        )
        # The API double dies on its own: the S3 server and the escaped process are left.
        double = int((state / "bed.pid").read_text())
        os.kill(double, 9)
        _wait_gone(double)
        status = _bed("status", state=state)
        assert status.returncode == 4, status.stdout + status.stderr
        assert "partly running" in status.stdout
        assert "moto_server" in status.stdout and f"{escaped.pid}\tsleep 300" in status.stdout, status.stdout

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
        with urllib.request.urlopen(f"http://{s3['endpoint']}/moto-api/", timeout=5) as resp:  # noqa: S310 - loopback
            assert resp.status == 200
        assert not (state / "clusters.json").exists() and not (state / "env.sh").exists()
        again = _bed("start-s3", state=state)
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
        assert json.loads((state / "s3.json").read_text()) == s3
        status = _bed("status", state=state)
        assert status.returncode == 4 and "moto_server" in status.stdout, status.stdout + status.stderr
    finally:
        stop = _bed("stop", state=state)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert _bed("status", state=state).returncode == 3
    assert _marked(state) == {}
    assert not (state / "s3.json").exists()


def test_latency_model_options_are_checked_before_anything_starts(tmp_path):
    state = tmp_path / "bed"
    for bad in (("--rollout-seconds", "soon"), ("--helm-wait-seconds", "-1")):
        run = _bed("start", *bad, state=state)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "take seconds" in run.stderr and bad[1] in run.stderr
        assert not state.exists()


def test_latency_model_reaches_both_doubles(tmp_path):
    state = tmp_path / "bed"
    start = _bed("start", "--clusters", "pc", "--rollout-seconds", "2.5", "--helm-wait-seconds", "4", state=state)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        assert "--rollout-seconds 2.5" in " | ".join(_marked(state).values())
        assert "export HELM_DOUBLE_WAIT_SECONDS='4'" in (state / "env.sh").read_text()
    finally:
        stop = _bed("stop", state=state)
    assert stop.returncode == 0, stop.stdout + stop.stderr
