"""Real clusters for the platform-role tests, from one session bed per test process.

The first ``PlatformBed`` of a pytest process starts a bed (``tests/helpers/bed.py``: etcd,
the fixture chart repository, MinIO) in a temporary directory; every ``PlatformBed`` then
adds its own fresh clusters to it (real kube-apiserver, controller manager, scheduler and
kwok each) and stops them when done, so test modules never share cluster state and a
cluster costs a few seconds of CPU, not a bed. ``pytest_sessionfinish``
(tests/conftest.py) stops the session bed.

A ``PlatformBed`` writes an inventory (groups ``pc`` and ``sc``, one host per cluster with
``kubeconfig``/``context``, plus the bed's chart repository for the roles' charts) and runs
playbooks against it with the pinned ``helm`` first on ``PATH`` and the bed's helm home.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.helpers.bed import Bed, chart_vars
from tests.helpers.kubebed import bin_dir
from tests.helpers.playbook import REPO, run_playbook

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
FIXTURES = REPO / "tests" / "fixtures"

_SESSION: dict = {}
_COUNTER = itertools.count(1)


def session_bed() -> Bed:
    """The bed of this test process (started on first use, without clusters)."""
    bed = _SESSION.get("bed")
    if bed is None:
        state = Path(tempfile.mkdtemp(prefix="nga4m-bed-"))
        bed = Bed(state).start(clusters=())
        _SESSION["bed"] = bed
    return bed


def stop_session_bed() -> None:
    bed = _SESSION.pop("bed", None)
    if bed is not None:
        left = bed.stop()
        if left:
            raise RuntimeError(f"the session bed left processes running: {left} (state kept in {bed.dir})")
        shutil.rmtree(bed.dir, ignore_errors=True)  # etcd data, PKI, logs: ~80 MB per test process


class PlatformBed:
    """Fresh real clusters named after inventory hosts (``pc1``, ``sc1``...) on the session bed."""

    def __init__(self, tmp_path: Path, clusters=("pc1", "sc1", "sc2")):
        self.tmp = Path(tmp_path)
        self.bed = session_bed()
        self.hosts = list(clusters)
        run_id = next(_COUNTER)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw")
        # Cluster names are unique in the session bed; each host's kubeconfig names its context after the host.
        self.names = {h: f"{h}-{worker}-{run_id}" for h in self.hosts}
        self.bed.add_clusters(list(self.names.values()))
        self.clusters = {}
        kubedir = self.tmp / "kube"
        kubedir.mkdir(parents=True, exist_ok=True)
        for host, name in self.names.items():
            cluster = self.bed.planes.clusters[name]
            doc = json.loads(cluster.kubeconfig.read_text())
            for section in ("clusters", "users", "contexts"):
                doc[section][0]["name"] = host
            doc["contexts"][0]["context"] = {"cluster": host, "user": host}
            doc["current-context"] = host
            path = kubedir / f"{host}.kubeconfig"
            path.write_text(json.dumps(doc))
            path.chmod(0o600)
            self.clusters[host] = {"server": cluster.server, "kubeconfig": str(path), "name": name}

    def stop(self):
        for name in self.names.values():
            if name in self.bed.planes.clusters:
                self.bed.remove_cluster(name)

    def cluster(self, host: str):
        """The control plane of ``host`` (kubebed.Cluster: stop_apiserver, restart_apiserver, pids...)."""
        return self.bed.planes.clusters[self.names[host]]

    # ------------------------------------------------------------ inventory / runs
    def kubeconfig(self, name: str) -> str:
        return self.clusters[name]["kubeconfig"]

    def inventory(self, pc=("pc1",), sc=("sc1", "sc2"), hostvars=None, name="inventory.yml", all_vars=None) -> Path:
        hostvars = hostvars or {}

        def host(h):
            return {"kubeconfig": self.kubeconfig(h), "context": h, "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable, **hostvars.get(h, {})}

        doc = {"all": {"vars": {**chart_vars(self.bed), **(all_vars or {})},
                       "children": {"pc": {"hosts": {h: host(h) for h in pc}},
                                    "sc": {"hosts": {h: host(h) for h in sc}}}}}
        path = self.tmp / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def env(self) -> dict:
        return self.bed.env()

    def run(self, playbook: str, inventory: Path, extra_vars=None, **kwargs):
        return run_playbook(PLAYBOOKS / playbook, inventory=inventory, extra_vars=extra_vars, env=self.env(), **kwargs)

    # ------------------------------------------------------------ assertions
    def helm(self, host: str, *args) -> subprocess.CompletedProcess:
        """Run the pinned helm against ``host``'s cluster (with the bed's helm home)."""
        return subprocess.run(  # noqa: S603 - argv built here
            [str(bin_dir() / "helm"), "--kubeconfig", self.kubeconfig(host), *args],
            capture_output=True, text=True, env={**os.environ, **self.env()}, check=False, timeout=120,
        )

    def release(self, cluster: str, namespace: str, name: str) -> dict:
        """The release as helm reports it: chart, version, app_version, revision, status, values (user-supplied).

        Raises KeyError when helm knows no such release.
        """
        listed = self.helm(cluster, "list", "-n", namespace, "--all", "--filter", f"^{name}$", "-o", "json")
        if listed.returncode != 0:
            raise RuntimeError(f"helm list failed: {listed.stderr}")
        found = [r for r in json.loads(listed.stdout or "[]") if r["name"] == name]
        if not found:
            raise KeyError(f"no helm release {namespace}/{name} on {cluster}")
        rel = found[0]
        values = self.helm(cluster, "get", "values", name, "-n", namespace, "-o", "json")
        if values.returncode != 0:
            raise RuntimeError(f"helm get values failed: {values.stderr}")
        chart = rel["chart"]
        return {"name": name, "namespace": namespace, "chart": chart.rsplit("-", 1)[0],
                "version": chart.rsplit("-", 1)[1], "app_version": rel.get("app_version", ""),
                "revision": int(rel["revision"]), "status": rel["status"], "values": json.loads(values.stdout or "{}") or {}}

    def releases(self, cluster: str) -> list[dict]:
        listed = self.helm(cluster, "list", "-A", "--all", "-o", "json")
        if listed.returncode != 0:
            raise RuntimeError(f"helm list failed: {listed.stderr}")
        return json.loads(listed.stdout or "[]")

    def api(self, cluster: str):
        from kubernetes import config  # noqa: PLC0415

        return config.new_client_from_config(config_file=self.kubeconfig(cluster))

    def get(self, cluster: str, api_version: str, kind: str, name: str, namespace: str | None = None):
        """One object as a dict, or None."""
        from kubernetes import dynamic  # noqa: PLC0415
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError  # noqa: PLC0415

        dyn = dynamic.DynamicClient(self.api(cluster))
        try:
            res = dyn.resources.get(api_version=api_version, kind=kind)
            return res.get(name=name, namespace=namespace).to_dict()
        except (NotFoundError, ResourceNotFoundError):
            return None

    def list(self, cluster: str, api_version: str, kind: str, namespace: str | None = None) -> list:
        from kubernetes import dynamic  # noqa: PLC0415
        from kubernetes.dynamic.exceptions import ResourceNotFoundError  # noqa: PLC0415

        dyn = dynamic.DynamicClient(self.api(cluster))
        try:
            res = dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            return []
        return [i.to_dict() for i in res.get(namespace=namespace).items] if namespace else [i.to_dict() for i in res.get().items]


def own_bed(workdir: Path, clusters=("pc", "sc1", "sc2")):
    """A bed of a test module's own (as ``tools/bed start``, not the session bed), for a module-scoped fixture to
    ``yield from``: stopped afterwards, and it must leave no process behind."""
    bed = Bed(workdir).start(clusters=clusters)
    try:
        yield bed
    finally:
        left = bed.stop()
        assert not left, f"the bed left processes running: {left}"


def failure_text(run) -> str:
    return f"rc={run.rc}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"


def wait_until(what: str, check, timeout: float = 120):
    """Poll ``check()`` every half second until it returns something true, and return that; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        time.sleep(0.5)
