"""Emulated bed for the platform-role tests: the Kubernetes API double and the helm double.

Both are TEST DOUBLES (tests/doubles/): ``kubeapi_double.py`` is started through
its CLI (one emulated cluster per name, plain HTTP on loopback) and the helm
stand-in is put first on PATH with its own state directory. ``PlatformBed``
writes an inventory (groups ``pc`` and ``sc``, one host per cluster with
``kubeconfig``/``context``) and runs playbooks against it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from tests.doubles.helm_double import recorded
from tests.helpers.playbook import REPO, run_playbook
from tests.helpers.procs import ManagedProcess, wait_file

KUBEAPI_DOUBLE = REPO / "tests" / "doubles" / "kubeapi_double.py"
HELM_DOUBLE_DIR = REPO / "tests" / "doubles" / "helm_double"
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
FIXTURES = REPO / "tests" / "fixtures"


class PlatformBed:
    def __init__(self, tmp_path: Path, clusters=("pc1", "sc1", "sc2")):
        self.tmp = Path(tmp_path)
        self.kube_state = self.tmp / "kube"
        self.helm_state = self.tmp / "helm"
        self.kube_state.mkdir(parents=True, exist_ok=True)
        self.helm_state.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, KUBEAPI_DOUBLE, "--state-dir", self.kube_state]
        for name in clusters:
            argv += ["--cluster", name]
        self.proc = ManagedProcess(argv, log_path=self.tmp / "kubeapi.log")
        info = self.kube_state / "clusters.json"
        try:
            wait_file(info, self.proc, timeout=60)
        except RuntimeError:
            self.proc.stop()
            raise
        self.clusters = json.loads(info.read_text())

    def stop(self):
        self.proc.stop()

    # ------------------------------------------------------------ inventory / runs
    def kubeconfig(self, name: str) -> str:
        return self.clusters[name]["kubeconfig"]

    def inventory(self, pc=("pc1",), sc=("sc1", "sc2"), hostvars=None, name="inventory.yml") -> Path:
        hostvars = hostvars or {}

        def host(h):
            return {"kubeconfig": self.kubeconfig(h), "context": h, "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable, **hostvars.get(h, {})}

        doc = {"all": {"children": {"pc": {"hosts": {h: host(h) for h in pc}},
                                    "sc": {"hosts": {h: host(h) for h in sc}}}}}
        path = self.tmp / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def env(self) -> dict:
        import os  # noqa: PLC0415

        return {"PATH": f"{HELM_DOUBLE_DIR}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "HELM_DOUBLE_STATE_DIR": str(self.helm_state)}

    def run(self, playbook: str, inventory: Path, extra_vars=None, **kwargs):
        return run_playbook(PLAYBOOKS / playbook, inventory=inventory, extra_vars=extra_vars, env=self.env(), **kwargs)

    # ------------------------------------------------------------ assertions
    def release(self, cluster: str, namespace: str, name: str) -> dict:
        key = recorded.cluster_key(self.clusters[cluster]["server"])
        return recorded.release(self.helm_state, key, namespace, name)

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


def failure_text(run) -> str:
    return f"rc={run.rc}\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
