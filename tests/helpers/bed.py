"""The local multicluster test bed: real control planes, a helm chart repository and an S3 server.

A bed lives in one state directory and holds:

- the control planes (``tests/helpers/kubebed.py``): one etcd, one real kube-apiserver,
  kube-controller-manager, kube-scheduler and kwok per cluster; ``DIR/<cluster>.kubeconfig``
  (cluster, user and context named after the cluster, admin client certificate);
- a helm chart repository on loopback (``python -m http.server`` over ``DIR/charts``): the
  charts of ``tests/fixtures/charts`` (small charts we write, published under the upstream
  names and versions the roles pin), packaged and indexed by the real ``helm``;
- the shared object storage: a MinIO server (built from its Go module) with generated keys in
  ``DIR/s3.json`` (mode 0600);
- a helm home of its own (``DIR/helm``: repositories, cache, plugins), so a bed never reads
  or writes the user's helm configuration;
- ``DIR/bed.json`` (what runs, for ``tools/bed status|stop`` and the demo inventory) and
  ``DIR/env.sh`` (``NGA4M_BED_DIR``, the pinned binaries first on ``PATH``, the helm home).

``tools/bed`` is the command line over this module; the tests, ``make demo`` and the
benchmarks use it directly.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import kubebed
from tests.helpers.kubebed import BedError, ControlPlanes, alive, bin_dir, free_port, owned_procs, spawn, stop_pids

REPO = kubebed.REPO
CHARTS = REPO / "tests" / "fixtures" / "charts"
CRDS = REPO / "tests" / "fixtures" / "crds"
DEFAULT_CLUSTERS = ("pc", "sc1", "sc2")
CHART_REPO = "nga4m-bed"


def chart_dirs() -> list[Path]:
    """The charts the bed serves: ours (tests/fixtures/charts) and the upstream ones tools/gobuild keeps."""
    ours = sorted(p for p in CHARTS.iterdir() if (p / "Chart.yaml").exists())
    upstream = bin_dir().parent / "upstream"
    return ours + sorted(p for p in upstream.iterdir() if (p / "Chart.yaml").exists())


def chart_vars(bed: "Bed") -> dict:
    """Inventory variables that point the roles' charts at a bed's chart repository (the roles keep upstream defaults)."""
    return {
        "kube_prometheus_stack_chart_repo_url": bed.charts_url,
        "kserve_cert_manager_chart_repo_url": bed.charts_url,
        "kserve_crd_chart_ref": f"{CHART_REPO}/kserve-crd",
        "kserve_resources_chart_ref": f"{CHART_REPO}/kserve-resources",
    }


def helm_env(state_dir: Path) -> dict:
    """Environment for helm (and kubernetes.core's helm modules) confined to the bed's helm home."""
    home = Path(state_dir) / "helm"
    return {
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
    }


def bed_env(state_dir: Path) -> dict:
    """What ``env.sh`` exports: the bed dir, the pinned binaries first on PATH, the helm home."""
    path = os.environ.get("PATH", "")
    gobin = str(bin_dir())
    if gobin not in path.split(os.pathsep):
        path = gobin + os.pathsep + path
    return {"NGA4M_BED_DIR": str(state_dir), "PATH": path, **helm_env(state_dir)}


class Bed:
    """One bed state directory; ``start`` brings it up, ``stop`` leaves no process behind."""

    def __init__(self, state_dir: Path, pod_ready_seconds: float = 0.0, s3_host: str = "127.0.0.1"):
        self.dir = Path(state_dir).resolve()
        self.owner = str(self.dir)
        self.planes = ControlPlanes(self.dir, pod_ready_seconds=pod_ready_seconds)
        self.s3_host = s3_host
        self.pids: dict[str, int] = {}
        self.charts_url = ""
        self.s3: dict = {}

    # ------------------------------------------------------------------ start / stop
    def start(self, clusters=DEFAULT_CLUSTERS, charts: bool = True, s3: bool = True) -> Bed:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            if s3:
                self.start_s3()
            if charts:
                self.start_charts()
                self.start_runner()
            if clusters:
                self.planes.start(list(clusters))
            self.write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def add_clusters(self, names) -> dict:
        if self.planes.etcd is None:
            added = self.planes.start(list(names))
        else:
            added = self.planes.add(list(names))
        self.write_state()
        return added

    def remove_cluster(self, name: str) -> None:
        self.planes.remove(name)
        self.write_state()

    def stop(self) -> list[tuple[int, str]]:
        """Stop everything this bed started; return the processes still alive (none, normally)."""
        self.planes.stop()
        stop_pids(list(self.pids.values()))
        self.pids.clear()
        left = owned_procs(self.owner)
        if left:
            stop_pids([pid for pid, _cmd in left], timeout=5)
            left = owned_procs(self.owner)
        for name in ("bed.json", "clusters.json", "s3.json"):
            (self.dir / name).unlink(missing_ok=True)
        return left

    # ------------------------------------------------------------------ parts
    def start_charts(self) -> None:
        """Package the fixture charts with the real helm, index them, serve them on loopback."""
        out = self.dir / "charts"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        helm = str(bin_dir() / "helm")
        env = {**os.environ, **helm_env(self.dir)}
        for chart in chart_dirs():
            _run([helm, "package", str(chart), "--destination", str(out)], env)
        port = free_port()
        self.charts_url = f"http://127.0.0.1:{port}"
        _run([helm, "repo", "index", str(out), "--url", self.charts_url], env)
        self.pids["charts"] = spawn([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", out, port],
                                    self.dir / "charts.log", self.owner)
        _wait_http(f"{self.charts_url}/index.yaml", self.pids["charts"], self.dir / "charts.log")
        # Charts the roles reference as repo/chart without adding a repository (kserve's, by default
        # OCI references) resolve through this repository in the bed's helm home.
        _run([helm, "repo", "add", CHART_REPO, self.charts_url, "--force-update"], env)

    def start_runner(self) -> None:
        """tests/helpers/bed_runner.py: the real program behind the kwok pods of the images the bed builds."""
        self.pids["runner"] = spawn([sys.executable, "-m", "tests.helpers.bed_runner", "--state-dir", self.dir],
                                    self.dir / "runner.out", self.owner, env={"PYTHONPATH": str(REPO)})

    def start_s3(self) -> None:
        """MinIO on ``s3_host`` with generated root credentials (DIR/s3.json, mode 0600)."""
        port, console = free_port(self.s3_host), free_port("127.0.0.1")
        self.s3 = {"endpoint": f"{self.s3_host}:{port}", "secure": False, "region": "us-east-1",
                   "access_key": "bed-" + secrets.token_hex(6), "secret_key": secrets.token_urlsafe(24)}
        data = self.dir / "s3-data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        self.pids["s3"] = spawn(
            [bin_dir() / "minio", "server", data, "--address", f"{self.s3_host}:{port}",
             "--console-address", f"127.0.0.1:{console}", "--quiet"],
            self.dir / "s3.log", self.owner,
            env={"MINIO_ROOT_USER": self.s3["access_key"], "MINIO_ROOT_PASSWORD": self.s3["secret_key"],
                 "MINIO_BROWSER": "off", "MINIO_REGION": self.s3["region"], "MINIO_UPDATE": "off",
                 "MINIO_CI_CD": "1"},
        )
        _wait_http(f"http://{self.s3['endpoint']}/minio/health/ready", self.pids["s3"], self.dir / "s3.log")
        kubebed._write(self.dir / "s3.json", json.dumps(self.s3))  # noqa: SLF001 - atomic 0600 write

    # ------------------------------------------------------------------ state
    def write_state(self) -> None:
        """bed.json always; with control planes or charts also clusters.json and env.sh."""
        clusters = {name: c.info() for name, c in self.planes.clusters.items()}
        state = {
            "dir": str(self.dir), "charts_url": self.charts_url,
            "s3_endpoint": self.s3.get("endpoint", ""),
            "pids": {**self.pids, **({"etcd": self.planes.etcd.pid} if self.planes.etcd else {})},
            "clusters": clusters,
        }
        kubebed._write(self.dir / "bed.json", json.dumps(state, indent=1), 0o644)  # noqa: SLF001
        if self.planes.etcd is None and not self.charts_url:
            return  # an S3 server only (tools/bed start-s3)
        kubebed._write(self.dir / "clusters.json", json.dumps(  # noqa: SLF001
            {n: {k: c[k] for k in ("server", "port", "kubeconfig")} for n, c in clusters.items()}, indent=1), 0o644)
        env = bed_env(self.dir)
        gobin = str(bin_dir())
        lines = ["# Generated by tools/bed start: real control planes (kwok nodes), the bed's helm home.",
                 f"export NGA4M_BED_DIR='{self.dir}'"]
        lines += [f"export {k}='{v}'" for k, v in env.items() if k.startswith("HELM_")]
        lines += [f'case ":$PATH:" in *":{gobin}:"*) ;; *) export PATH=\'{gobin}\':"$PATH" ;; esac']
        kubebed._write(self.dir / "env.sh", "\n".join(lines) + "\n", 0o644)  # noqa: SLF001

    def env(self) -> dict:
        return bed_env(self.dir)


# ---------------------------------------------------------------------- reading a bed from disk
def read_state(state_dir: Path) -> dict:
    try:
        return json.loads((Path(state_dir) / "bed.json").read_text())
    except (OSError, ValueError):
        return {}


def recorded_pids(state: dict) -> dict[str, int]:
    pids = dict(state.get("pids", {}))
    for name, info in state.get("clusters", {}).items():
        for role, pid in info.get("pids", {}).items():
            pids[f"{name}/{role}"] = pid
    return pids


def stop_dir(state_dir: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Stop a bed started by another process: the recorded processes, then anything carrying its marker.

    Returns (the marked processes that had left what was recorded and were killed, those still alive).
    """
    state_dir = Path(state_dir).resolve()
    stop_pids(list(recorded_pids(read_state(state_dir)).values()))
    escaped = owned_procs(str(state_dir))
    left = []
    if escaped:
        stop_pids([pid for pid, _cmd in escaped], timeout=5)
        left = owned_procs(str(state_dir))
    for name in ("bed.json", "clusters.json", "s3.json"):
        (state_dir / name).unlink(missing_ok=True)
    return escaped, left


def status_dir(state_dir: Path) -> tuple[int, str]:
    """(0, text) when every recorded process runs; (4, text) when only some do; (3, text) when none does."""
    state_dir = Path(state_dir).resolve()
    state = read_state(state_dir)
    pids = recorded_pids(state)
    running = {k: p for k, p in pids.items() if alive(p)}
    marked = owned_procs(str(state_dir))
    if pids and len(running) == len(pids):
        lines = [f"bed: running in {state_dir}"]
        for name, info in state.get("clusters", {}).items():
            lines.append(f"  {name:<12} {info['server']:<28} {info['kubeconfig']}")
        if state.get("charts_url"):
            lines.append(f"  charts       {state['charts_url']}")
        if state.get("s3_endpoint"):
            lines.append(f"  s3           {state['s3_endpoint']}")
        return 0, "\n".join(lines)
    if running or marked:
        dead = sorted(set(pids) - set(running))
        lines = [f"bed: partly running in {state_dir}" + (f" (not running: {', '.join(dead)})" if dead else "") + ":"]
        lines += [f"  {pid}\t{cmd}" for pid, cmd in marked]
        return 4, "\n".join(lines)
    return 3, f"bed: not running in {state_dir} (no process it started is alive)"


# ---------------------------------------------------------------------- helpers
def _run(argv: list, env: dict) -> None:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise BedError(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _wait_http(url: str, pid: int, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            break
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
                if resp.status < 500:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    stop_pids([pid])
    raise BedError(f"{url} did not answer within {timeout}s; log ({log}):\n{kubebed._tail(log)}")  # noqa: SLF001
