"""Run the real program behind a kwok pod, for the images the bed can build.

kwok simulates every pod of the bed: it is scheduled, becomes Running and Ready, and nothing
runs. For a few images the bed has the real program, built from the same pinned Go module
(``tools/gobuild``). This runner (one process per bed, started by ``tests/helpers/bed.py``)
watches the bed's clusters and, while a Running pod of such an image exists, runs the
program on this machine against that pod's cluster, in that pod's namespace; when the pod
goes (``helm uninstall``, a scale to zero, a deleted cluster) it stops the program. A program
that exits is restarted with a growing delay, as a kubelet would.

Programs:

- ``kserve/kserve-controller`` (the KServe chart's controller Deployment) -> ``kserve-manager``,
  KServe's real controller manager: it reconciles InferenceServices into predictor
  Deployments, Services, autoscalers and ingress objects, and reports their readiness, from
  the ServingRuntimes and the ``inferenceservice-config`` ConfigMap the roles install. Its
  webhook server listens on a loopback port with the bed's serving certificate, but no
  webhook configuration points at it (the fixture chart has none).

The programs use the bed's admin credentials. Their logs are ``DIR/run/<cluster>-<ns>-<program>/``.

    python -m tests.helpers.bed_runner --state-dir DIR     (foreground until SIGTERM)
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
import urllib.error
from pathlib import Path

from tests.helpers.kubebed import Api, alive, bin_dir, free_port, reap, spawn, stop_pids

POLL_SECONDS = 1.0


def _kserve_manager(workdir: Path, kubeconfig: str, namespace: str, pki: Path) -> tuple[list, dict]:
    certs = workdir / "tmp" / "k8s-webhook-server" / "serving-certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pki / "apiserver.crt", certs / "tls.crt")
    shutil.copyfile(pki / "apiserver.key", certs / "tls.key")
    argv = [bin_dir() / "kserve-manager", "--metrics-addr", "127.0.0.1:0", "--health-probe-addr", "127.0.0.1:0",
            "--webhook-port", str(free_port())]
    return argv, {"KUBECONFIG": kubeconfig, "POD_NAMESPACE": namespace, "TMPDIR": str(workdir / "tmp")}


# image (without registry host and tag) -> (short name, how to run it)
PROGRAMS = {
    "kserve/kserve-controller": ("kserve-manager", _kserve_manager),
}


def image_name(image: str) -> str:
    """``docker.io/kserve/kserve-controller:v0.20.0`` -> ``kserve/kserve-controller``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name.rsplit(":", 1)[0]
    parts = name.split("/")
    if len(parts) > 2 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    return "/".join(parts)


class Runner:
    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir).resolve()
        self.pki = self.dir / "pki"
        self.owner = str(self.dir)
        self.log = open(self.dir / "runner.log", "a", buffering=1)  # noqa: SIM115 - lives as long as the runner
        # (cluster, namespace, program) -> {"pid", "restarts", "next_start"}
        self.running: dict[tuple, dict] = {}
        self.stopping = False

    def say(self, msg: str) -> None:
        self.log.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

    def clusters(self) -> dict:
        try:
            return json.loads((self.dir / "bed.json").read_text()).get("clusters", {})
        except (OSError, ValueError):
            return {}

    def wanted(self, clusters: dict) -> set:
        want = set()
        for name, info in clusters.items():
            try:
                pods = Api(info["server"], self.pki).request(
                    "GET", "/api/v1/pods?fieldSelector=status.phase%3DRunning", timeout=5)["items"]
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                # An API server that is down (a fault test) keeps what runs against it running.
                want.update(k for k in self.running if k[0] == name)
                continue
            for pod in pods:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                for container in pod["spec"].get("containers", []):
                    program = PROGRAMS.get(image_name(container.get("image", "")))
                    if program:
                        want.add((name, pod["metadata"]["namespace"], program[0]))
        return want

    def start(self, key: tuple, clusters: dict, state: dict) -> None:
        cluster, namespace, program = key
        run = next(fn for short, fn in PROGRAMS.values() if short == program)
        workdir = self.dir / "run" / f"{cluster}-{namespace}-{program}"
        workdir.mkdir(parents=True, exist_ok=True)
        argv, env = run(workdir, clusters[cluster]["kubeconfig"], namespace, self.pki)
        state["pid"] = spawn(argv, workdir / f"{program}.log", self.owner, env=env)
        self.say(f"started {program} for {cluster}/{namespace} (pid {state['pid']}, restarts {state['restarts']})")

    def loop(self) -> None:
        while not self.stopping:
            clusters = self.clusters()
            want = self.wanted(clusters)
            now = time.monotonic()
            for key in list(self.running):
                if key not in want:
                    pid = self.running.pop(key).get("pid")
                    if pid:
                        stop_pids([pid])
                    self.say(f"stopped {key[2]} for {key[0]}/{key[1]}: no Running pod of it any more")
            for key in want:
                state = self.running.setdefault(key, {"pid": 0, "restarts": 0, "next_start": 0.0})
                if state["pid"]:
                    reap(state["pid"])
                    if alive(state["pid"]):
                        continue
                    state["pid"] = 0
                    state["restarts"] += 1
                    state["next_start"] = now + min(2 ** state["restarts"], 30)
                    self.say(f"{key[2]} for {key[0]}/{key[1]} exited; restart in {min(2 ** state['restarts'], 30)}s")
                if now >= state["next_start"] and key[0] in clusters:
                    self.start(key, clusters, state)
            time.sleep(POLL_SECONDS)

    def stop(self, *_args) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        stop_pids([s["pid"] for s in self.running.values() if s.get("pid")])
        self.running.clear()
        self.say("runner stopped")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    runner = Runner(Path(args.state_dir))
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    runner.say("runner started")
    try:
        runner.loop()
    finally:
        runner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
