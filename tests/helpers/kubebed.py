"""Real Kubernetes control planes on loopback: the test bed of the suite, the benchmarks and the demo.

Every process here is the real program, built from pinned Go modules by ``tools/gobuild``
(versions in ``tools/pins.env``):

- one ``etcd`` per bed, shared by its clusters (each cluster's API server keeps its data under
  its own ``--etcd-prefix``);
- per cluster: ``kube-apiserver`` (TLS, client-certificate and ServiceAccount-token
  authentication, RBAC and Node authorization, the default admission plugins,
  ``--allow-privileged`` for the sysctl DaemonSet, a ServiceAccount token issuer of its own so
  TokenRequest works and one cluster's tokens are refused by another), ``kube-controller-manager``
  (every default controller: Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
  garbage collection, namespaces, endpoints, PersistentVolume binding, ServiceAccount tokens),
  ``kube-scheduler`` and ``kwok``;
- ``kwok`` simulates the nodes (``<cluster>-node1`` ...) and the pods' kubelet: with the stages
  we write here (``kwok_stages``), a scheduled pod becomes Running and Ready after
  ``pod_ready_seconds``, a Job's pod then Succeeds, and a deleted pod goes away. Nothing runs in
  the pods: their images are never pulled and nothing listens on their ports.

Each cluster also gets a default StorageClass ``standard`` and a pool of pre-created
PersistentVolumes, which the real PersistentVolume controller binds to claims (there is no
volume provisioner).

Every process runs in its own session with ``NGA4M_BED_OWNER=<state dir>`` in its environment,
so a stop can find and kill everything a bed started, even after the starting process is gone.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOBUILD = REPO / "tools" / "gobuild"
PINS = REPO / "tools" / "pins.env"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "helm", "minio")
OWNER_ENV = "NGA4M_BED_OWNER"
NODES_PER_CLUSTER = 2
PV_POOL = 12


class BedError(RuntimeError):
    """A bed could not be started or reached; the message says what to do."""


# --------------------------------------------------------------------------- binaries
def pins() -> dict:
    out = {}
    for line in PINS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def bin_dir(build: bool = False) -> Path:
    """The directory of the pinned binaries; with ``build``, build what is missing first."""
    argv = [str(GOBUILD)] if build else [str(GOBUILD), "--dir"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603 - our script
    path = Path(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    if proc.returncode != 0 or path is None:
        missing = [b for b in BINARIES if path is None or not (path / b).exists()]
        raise BedError(
            f"the bed's binaries are not built ({', '.join(missing) or proc.stderr.strip()}): run tools/gobuild "
            "(make test and make demo run it through tools/bootstrap); it builds them from the pinned Go modules "
            f"of tools/pins.env\n{proc.stderr.strip()}"
        )
    return path


def binary(name: str) -> str:
    return str(bin_dir() / name)


# --------------------------------------------------------------------------- small helpers
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _write(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- PKI
def ensure_pki(pki: Path) -> None:
    """One CA per bed, the API servers' serving certificate and the client certificates.

    Clients: ``admin`` (group system:masters, for the kubeconfigs the bed hands out),
    ``kube-controller-manager`` and ``kube-scheduler`` (their built-in RBAC users), ``kwok``
    (system:masters: it writes node and pod status everywhere). ``sa.key`` signs ServiceAccount
    tokens. EC P-256 keys: fast to make, accepted everywhere here.
    """
    if (pki / "done").exists():
        return
    from cryptography import x509  # noqa: PLC0415 - only a first start needs it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415
    import ipaddress  # noqa: PLC0415

    pki.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=365)

    def key_pem(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    def name(cn: str, org: str | None = None):
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("nga4m-bed-ca")
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(pki / "ca.key", key_pem(ca_key))
    _write(pki / "ca.crt", ca.public_bytes(serialization.Encoding.PEM), 0o644)

    def issue(stem: str, cn: str, org: str | None = None, server: bool = False) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(name(cn, org)).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"), x509.DNSName("kubernetes.default.svc.cluster.local"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
            ]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(pki / f"{stem}.key", key_pem(key))
        _write(pki / f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)

    issue("apiserver", "kube-apiserver", server=True)
    issue("admin", "nga4m-bed-admin", "system:masters")
    issue("kube-controller-manager", "system:kube-controller-manager")
    issue("kube-scheduler", "system:kube-scheduler")
    issue("kwok", "kwok-controller", "system:masters")
    sa_key = ec.generate_private_key(ec.SECP256R1())
    _write(pki / "sa.key", key_pem(sa_key))
    sa_pub = sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write(pki / "sa.pub", sa_pub, 0o644)
    (pki / "done").touch()


def kubeconfig_doc(name: str, server: str, pki: Path, user: str = "admin") -> dict:
    """A kubeconfig with the CA and a client certificate embedded; cluster, user and context named ``name``."""
    import base64  # noqa: PLC0415

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": b64(pki / "ca.crt")}}],
        "users": [{"name": name, "user": {"client-certificate-data": b64(pki / f"{user}.crt"),
                                          "client-key-data": b64(pki / f"{user}.key")}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


# --------------------------------------------------------------------------- processes
def spawn(argv: list, log: Path, owner: str, env: dict | None = None) -> int:
    """Start ``argv`` in its own session, marked as the bed's, output to ``log``; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - argv built by the bed
            [str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {}), OWNER_ENV: owner}, start_new_session=True,
        )
    return proc.pid


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def reap(pid: int) -> None:
    """Collect ``pid`` if it is our child (a bed started in this process), so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_pids(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM each process group, SIGKILL what is left after ``timeout``; return the pids still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in pids:
                reap(pid)
            if not any(alive(p) for p in pids):
                return []
            time.sleep(0.05)
    for pid in pids:
        reap(pid)
    return [p for p in pids if alive(p)]


def owned_procs(owner: str) -> list[tuple[int, str]]:
    """Every live process carrying ``NGA4M_BED_OWNER=owner`` (zombies, this process and its parents skipped)."""
    marker = f"{OWNER_ENV}={owner}".encode()
    skip, pid = set(), os.getpid()
    while pid > 1:
        skip.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                pid = int(fh.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip or not alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if marker not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found.append((int(entry), cmd))
    return sorted(found)


# --------------------------------------------------------------------------- API access (no client library)
class Api:
    """A minimal JSON client for one cluster with the bed's admin certificate (readiness, seeding)."""

    def __init__(self, server: str, pki: Path):
        self.server = server.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

    def request(self, method: str, path: str, body=None, content_type: str = "application/json", timeout: float = 10):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method,  # noqa: S310 - loopback https
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as resp:  # noqa: S310
            raw = resp.read()
        return json.loads(raw) if raw and raw[:1] in (b"{", b"[") else raw.decode(errors="replace")

    def apply(self, path: str, obj: dict, manager: str = "nga4m-bed"):
        """Server-side apply ``obj`` at ``path`` (the object's URL)."""
        return self.request("PATCH", f"{path}?fieldManager={manager}&force=true", obj, "application/apply-patch+yaml")

    def healthy(self, what: str = "readyz") -> bool:
        try:
            return self.request("GET", f"/{what}", timeout=2) == "ok"
        except (urllib.error.URLError, OSError, ValueError):
            return False


# --------------------------------------------------------------------------- kwok stages (ours)
# A Ready pod's conditions and container statuses, as a kubelet reports them once its containers run.
_POD_READY_STATUS = """
{{ $now := Now }}
conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: PodScheduled}
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: ContainersReady}
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Ready}
{{ range .spec.readinessGates }}
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: {{ .conditionType | Quote }}}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: ""
  ready: true
  started: true
  restartCount: 0
  state: {running: {startedAt: {{ $now | Quote }}}}
{{ end }}
{{ with .spec.initContainers }}
initContainerStatuses:
{{ range . }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: ""
  ready: true
  restartCount: 0
  state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
{{ end }}
{{ end }}
"""


def kwok_config(pod_ready_ms: int, job_complete_ms: int) -> str:
    """kwok's configuration: which nodes it manages, and the stages it plays on nodes and pods.

    Written for the bed (not kwok's shipped stage sets): a node becomes Ready at once; a
    scheduled pod becomes Running and Ready ``pod_ready_ms`` after it was created (and Ready again
    when the node controller marked it NotReady during an API outage); a Running
    pod owned by a Job succeeds ``job_complete_ms`` later; a pod being deleted is removed
    (there is no kubelet to finish a graceful deletion).
    """
    docs = [
        {"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokConfiguration",
         "options": {"manageAllNodes": True, "nodeLeaseDurationSeconds": 40, "nodeLeaseParallelism": 2,
                     "podPlayStageParallelism": 4, "nodePlayStageParallelism": 2, "podsOnNodeSyncParallelism": 1,
                     "enableDebuggingHandlers": False, "enableProfilingHandler": False,
                     "enablePodsOnNodeSyncListPager": True, "enablePodsOnNodeSyncStreamWatch": False}},
        _stage("bed-node-ready", "Node", [("Exists", '.metadata.name', None),
                                          ("NotIn", '.status.conditions.[] | select( .type == "Ready" ) | .status', ["True"])],
               0, """
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ Now | Quote }}
  lastTransitionTime: {{ Now | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
addresses:
- address: {{ NodeIP | Quote }}
  type: InternalIP
- address: {{ .metadata.name | Quote }}
  type: Hostname
allocatable: {{ YAML .status.capacity 1 }}
capacity: {{ YAML .status.capacity 1 }}
daemonEndpoints:
  kubeletEndpoint:
    Port: {{ NodePort }}
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: kwok-{{ Version }}
  kubeProxyVersion: kwok-{{ Version }}
phase: Running
"""),
        # After an outage the node controller marks the pods of nodes it lost NotReady; a kubelet would
        # report them Ready again once its node is back, so kwok does.
        _stage("bed-pod-ready-again", "Pod", [("DoesNotExist", ".metadata.deletionTimestamp", None),
                                              ("In", ".status.phase", ["Running"]),
                                              ("NotIn", '.status.conditions.[] | select( .type == "Ready" ) | .status', ["True"]),
                                              ("NotIn", ".metadata.ownerReferences.[].kind", ["Job"])],
               0, _POD_READY_STATUS),
        _stage("bed-pod-ready", "Pod", [("DoesNotExist", ".metadata.deletionTimestamp", None),
                                        ("In", ".status.phase", ["Pending"])],
               pod_ready_ms, _POD_READY_STATUS + """{{ with NodeIPsWith .spec.nodeName }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
{{ with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""),
        _stage("bed-job-pod-succeeded", "Pod", [("DoesNotExist", ".metadata.deletionTimestamp", None),
                                                ("In", ".status.phase", ["Running"]),
                                                ("In", ".metadata.ownerReferences.[].kind", ["Job"])],
               job_complete_ms, """
{{ $now := Now }}
conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: PodScheduled}
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady, reason: PodCompleted}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready, reason: PodCompleted}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: ""
  ready: false
  started: false
  restartCount: 0
  state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}}
{{ end }}
phase: Succeeded
"""),
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": "bed-pod-delete"},
         "spec": {"resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                  "selector": {"matchExpressions": [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}]},
                  "next": {"finalizers": {"empty": True}, "delete": True}}},
    ]
    return "\n---\n".join(json.dumps(d, indent=1) for d in docs) + "\n"


def _stage(name: str, kind: str, exprs: list, delay_ms: int, template: str) -> dict:
    match = []
    for op, key, values in exprs:
        expr = {"key": key, "operator": op}
        if values is not None:
            expr["values"] = values
        match.append(expr)
    spec = {"resourceRef": {"apiGroup": "v1", "kind": kind}, "selector": {"matchExpressions": match},
            "next": {"statusTemplate": template.strip() + "\n"}}
    if delay_ms:
        spec["delay"] = {"durationMilliseconds": int(delay_ms)}
    return {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage", "metadata": {"name": name}, "spec": spec}


# --------------------------------------------------------------------------- etcd
@dataclass
class Etcd:
    dir: Path
    owner: str
    port: int = 0
    pid: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        data = self.dir / "etcd-data"
        shutil.rmtree(data, ignore_errors=True)  # a bed starts empty
        for _attempt in range(3):
            self.port, peer = free_port(), free_port()
            argv = [binary("etcd"), "--name", "bed", "--data-dir", data,
                    "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                    "--listen-peer-urls", f"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-cluster", f"bed=http://127.0.0.1:{peer}", "--listen-metrics-urls", "",
                    "--unsafe-no-fsync", "--log-level", "warn", "--quota-backend-bytes", str(8 << 30),
                    "--auto-compaction-mode", "revision", "--auto-compaction-retention", "5000"]
            self.pid = spawn(argv, self.dir / "etcd.log", self.owner)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and alive(self.pid):
                try:
                    with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:  # noqa: S310 - loopback
                        if json.loads(resp.read()).get("health") == "true":
                            return
                except (urllib.error.URLError, OSError, ValueError):
                    pass
                time.sleep(0.1)
            stop_pids([self.pid])
            if "address already in use" not in _tail(self.dir / "etcd.log"):
                break
        raise BedError(f"etcd did not become healthy; its log ({self.dir / 'etcd.log'}):\n{_tail(self.dir / 'etcd.log')}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- one cluster
@dataclass
class Cluster:
    """One control plane: API server, controller manager, scheduler and kwok, on the bed's etcd."""

    name: str
    dir: Path
    pki: Path
    owner: str
    etcd_url: str
    index: int = 0
    port: int = 0
    pids: dict = field(default_factory=dict)
    pod_ready_seconds: float = 0.0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.dir.parent.parent / f"{self.name}.kubeconfig"

    @property
    def issuer(self) -> str:
        return f"https://{self.name}.bed.nga4m.invalid"

    def api(self) -> Api:
        return Api(self.server, self.pki)

    # -- API server
    def apiserver_argv(self) -> list:
        pki = self.pki
        return [
            binary("kube-apiserver"),
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", self.port,
            "--etcd-servers", self.etcd_url, "--etcd-prefix", f"/nga4m-bed/{self.name}",
            "--tls-cert-file", pki / "apiserver.crt", "--tls-private-key-file", pki / "apiserver.key",
            "--client-ca-file", pki / "ca.crt",
            "--service-account-issuer", self.issuer, "--api-audiences", self.issuer,
            "--service-account-key-file", pki / "sa.pub", "--service-account-signing-key-file", pki / "sa.key",
            "--authorization-mode", "Node,RBAC", "--allow-privileged=true",
            "--enable-admission-plugins", "NodeRestriction",
            "--service-cluster-ip-range", "10.96.0.0/16", "--service-node-port-range", "30000-32767",
            "--profiling=false", "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type", "none", "--event-ttl", "30m", "--v", "1",
        ]

    def start_apiserver(self, timeout: float = 120) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = self.dir / "kube-apiserver.log"
        for _attempt in range(3):
            self.port = free_port()
            self.pids["kube-apiserver"] = spawn(self.apiserver_argv(), log, self.owner)
            api = self.api()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and alive(self.pids["kube-apiserver"]):
                if api.healthy("readyz"):
                    return
                time.sleep(0.2)
            stop_pids([self.pids.pop("kube-apiserver")])
            if "address already in use" not in _tail(log):
                break
        raise BedError(f"kube-apiserver of cluster {self.name} did not become ready; its log ({log}):\n{_tail(log)}")

    # -- controllers
    def start_controllers(self) -> None:
        pki = self.pki
        configs = {}
        for user in ("kube-controller-manager", "kube-scheduler", "kwok"):
            path = self.dir / f"{user}.kubeconfig"
            _write(path, json.dumps(kubeconfig_doc(self.name, self.server, pki, user)))
            configs[user] = path
        argvs = {}
        argvs["kube-controller-manager"] = [
            binary("kube-controller-manager"), "--kubeconfig", configs["kube-controller-manager"],
            "--secure-port", "0", "--leader-elect=false", "--use-service-account-credentials=true",
            "--service-account-private-key-file", pki / "sa.key", "--root-ca-file", pki / "ca.crt",
            "--cluster-signing-cert-file", pki / "ca.crt", "--cluster-signing-key-file", pki / "ca.key",
            "--controllers", "*",
            "--kube-api-qps", "100", "--kube-api-burst", "200", "--concurrent-deployment-syncs", "10",
            "--concurrent-replicaset-syncs", "10", "--concurrent-gc-syncs", "20", "--v", "1",
        ]
        argvs["kube-scheduler"] = [
            binary("kube-scheduler"), "--kubeconfig", configs["kube-scheduler"], "--secure-port", "0",
            "--leader-elect=false", "--kube-api-qps", "100", "--kube-api-burst", "200", "--v", "1",
        ]
        ready_ms = int(self.pod_ready_seconds * 1000)
        _write(self.dir / "kwok.yaml", kwok_config(ready_ms, max(ready_ms // 2, 0)), 0o644)
        argvs["kwok"] = [
            binary("kwok"), "--kubeconfig", configs["kwok"], "--config", self.dir / "kwok.yaml",
            "--manage-all-nodes=true", "--cidr", f"10.{64 + self.index % 64}.0.0/16",
            "--node-ip", f"192.168.{self.index % 250}.10", "--server-address", "",
        ]
        self.controller_argvs = argvs
        for component, argv in argvs.items():
            self.pids[component] = spawn(argv, self.dir / f"{component}.log", self.owner)

    # -- what a fresh cluster has besides the control plane
    def seed(self) -> None:
        api = self.api()
        for i in range(1, NODES_PER_CLUSTER + 1):
            node = f"{self.name}-node{i}"
            api.apply(f"/api/v1/nodes/{node}", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "annotations": {"kwok.x-k8s.io/node": "fake"},
                             "labels": {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "type": "kwok"}},
                "status": {"capacity": {"cpu": "32", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"}},
            })
        api.apply("/apis/storage.k8s.io/v1/storageclasses/standard", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate", "reclaimPolicy": "Retain",
        })
        for i in range(1, PV_POOL + 1):
            pv = f"bed-pv-{i:02d}"
            api.apply(f"/api/v1/persistentvolumes/{pv}", {
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv, "labels": {"nga4m-bed": "pool"}},
                "spec": {"capacity": {"storage": "500Gi"}, "accessModes": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"],
                         "storageClassName": "standard", "persistentVolumeReclaimPolicy": "Retain",
                         "hostPath": {"path": f"/var/lib/nga4m-bed/{self.name}/{pv}"}},
            })

    def wait_nodes_ready(self, timeout: float = 60) -> None:
        api = self.api()
        deadline = time.monotonic() + timeout
        ready = 0
        while time.monotonic() < deadline:
            try:
                nodes = api.request("GET", "/api/v1/nodes")["items"]
            except (urllib.error.URLError, OSError, ValueError):
                nodes = []
            ready = sum(1 for n in nodes for c in n.get("status", {}).get("conditions", [])
                        if c["type"] == "Ready" and c["status"] == "True")
            if ready >= NODES_PER_CLUSTER:
                return
            for role in ("kube-controller-manager", "kube-scheduler", "kwok"):
                if not alive(self.pids[role]):
                    raise BedError(f"{role} of cluster {self.name} exited; its log:\n{_tail(self.dir / f'{role}.log')}")
            time.sleep(0.2)
        raise BedError(f"cluster {self.name}: {ready} of {NODES_PER_CLUSTER} kwok nodes Ready after {timeout}s; "
                       f"kwok's log:\n{_tail(self.dir / 'kwok.log')}")

    def wait_default_serviceaccount(self, timeout: float = 60) -> None:
        """The ServiceAccount controller made ``default/default`` (pods cannot be created before it)."""
        api = self.api()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
                return
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.2)
        raise BedError(f"cluster {self.name}: no default ServiceAccount after {timeout}s (kube-controller-manager log:\n"
                       f"{_tail(self.dir / 'kube-controller-manager.log')})")

    def wait_volumes_available(self, timeout: float = 60) -> None:
        """The PersistentVolume controller marked every pool volume Available (a fresh cluster is settled:
        a later status update would show as a change the tests did not make)."""
        api = self.api()
        deadline = time.monotonic() + timeout
        phases: dict = {}
        while time.monotonic() < deadline:
            try:
                items = api.request("GET", "/api/v1/persistentvolumes?labelSelector=nga4m-bed%3Dpool")["items"]
            except (urllib.error.URLError, OSError, ValueError):
                items = []
            phases = {v["metadata"]["name"]: v.get("status", {}).get("phase") for v in items}
            if len(phases) == PV_POOL and all(p == "Available" for p in phases.values()):
                return
            time.sleep(0.2)
        raise BedError(f"cluster {self.name}: pool volumes not Available after {timeout}s: {phases}")

    def write_kubeconfig(self) -> None:
        _write(self.kubeconfig, json.dumps(kubeconfig_doc(self.name, self.server, self.pki), indent=1))

    def start(self) -> None:
        self.start_apiserver()
        self.write_kubeconfig()
        self.start_controllers()
        self.seed()
        self.wait_nodes_ready()
        self.wait_default_serviceaccount()
        self.wait_volumes_available()

    def stop(self) -> list[int]:
        left = stop_pids(list(self.pids.values()))
        return left

    def stop_apiserver(self) -> None:
        """Stop only the API server (fault tests); ``restart_apiserver`` brings it back on the same port."""
        stop_pids([self.pids["kube-apiserver"]])

    def restart_apiserver(self, timeout: float = 120) -> list[str]:
        log = self.dir / "kube-apiserver.log"
        self.pids["kube-apiserver"] = spawn(self.apiserver_argv(), log, self.owner)
        deadline = time.monotonic() + timeout
        api = self.api()
        while time.monotonic() < deadline and alive(self.pids["kube-apiserver"]):
            if api.healthy("readyz"):
                return self._respawn_dead_controllers()
            time.sleep(0.2)
        raise BedError(f"kube-apiserver of cluster {self.name} did not come back; its log:\n{_tail(log)}")

    def _respawn_dead_controllers(self) -> list[str]:
        """Start again what exited while the API server was down, as a node's kubelet restarts a crashed
        static pod; return their names (the reason is at the end of <component>.log)."""
        dead = [c for c, argv in getattr(self, "controller_argvs", {}).items() if not alive(self.pids[c])]
        for component in dead:
            self.pids[component] = spawn(self.controller_argvs[component], self.dir / f"{component}.log", self.owner)
        return dead

    def info(self) -> dict:
        return {"server": self.server, "port": self.port, "kubeconfig": str(self.kubeconfig), "index": self.index,
                "dir": str(self.dir), "pids": dict(self.pids), "issuer": self.issuer}


# --------------------------------------------------------------------------- a bed: etcd + clusters
class ControlPlanes:
    """The control planes of one bed state dir: one etcd, any number of clusters, added at any time."""

    def __init__(self, state_dir: Path, pod_ready_seconds: float = 0.0):
        self.dir = Path(state_dir).resolve()
        self.owner = str(self.dir)
        self.pki = self.dir / "pki"
        self.pod_ready_seconds = pod_ready_seconds
        self.etcd: Etcd | None = None
        self.clusters: dict[str, Cluster] = {}
        self._next_index = 0

    def start(self, names: list[str]) -> dict[str, Cluster]:
        self.dir.mkdir(parents=True, exist_ok=True)
        ensure_pki(self.pki)
        if self.etcd is None:
            self.etcd = Etcd(self.dir, self.owner)
            self.etcd.start()
        return self.add(names)

    def add(self, names: list[str]) -> dict[str, Cluster]:
        """Start clusters ``names`` (in parallel); on a failure stop the ones this call started."""
        new = []
        for name in names:
            if name in self.clusters:
                raise BedError(f"cluster {name} is already running in {self.dir}")
            self._next_index += 1
            new.append(Cluster(name, self.dir / "clusters" / name, self.pki, self.owner, self.etcd.url,
                               index=self._next_index, pod_ready_seconds=self.pod_ready_seconds))
        with ThreadPoolExecutor(max_workers=max(len(new), 1)) as pool:
            futures = [pool.submit(c.start) for c in new]
            errors = []
            for fut in futures:
                try:
                    fut.result()
                except BedError as exc:
                    errors.append(str(exc))
        if errors:
            for c in new:
                c.stop()
            raise BedError("\n\n".join(errors))
        for c in new:
            self.clusters[c.name] = c
        return {c.name: c for c in new}

    def remove(self, name: str) -> None:
        cluster = self.clusters.pop(name)
        cluster.stop()
        cluster.kubeconfig.unlink(missing_ok=True)

    def pids(self) -> list[int]:
        out = [self.etcd.pid] if self.etcd else []
        for c in self.clusters.values():
            out += list(c.pids.values())
        return out

    def stop(self) -> list[int]:
        left = []
        for c in list(self.clusters.values()):
            left += c.stop()
        self.clusters.clear()
        if self.etcd:
            left += stop_pids([self.etcd.pid])
            self.etcd = None
        return left
