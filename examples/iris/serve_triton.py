# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serve a published Triton repository with the real Triton Inference Server, locally.

Runs the ``tritonserver`` that PyPI's ``nvidia-pytriton`` wheel ships (installed by
``tools/tritonserver``, which prints its directory) over the repository exactly as
``nga4m.platform.triton_model_repository`` published it - on S3 (``s3://`` with the
endpoint, Triton's own S3 client) or in a directory - with NGA4M's Python-based
``onnxruntime`` backend (``triton_backends/onnxruntime/model.py``: that wheel has no ONNX
Runtime backend). Triton reads ``config.pbtxt``, polls the repository for new versions
(``--poll-secs``), serves the v2 protocol on REST and gRPC and exports its
``nv_inference_*`` metrics: what a KServe Triton predictor does on a cluster, minus the GPU.

Usage::

    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python examples/iris/serve_triton.py \\
        --endpoint 127.0.0.1:9000 --bucket nga4m --prefix models/triton --http-port 8080

``--local-path DIR`` serves a repository directory instead. The process becomes
``tritonserver`` (exec): stop it with SIGTERM. Ports bind all interfaces unless ``--address``.
"""

import argparse
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BACKENDS = os.path.join(HERE, "triton_backends")


def triton_home(given=None):
    """The tritonserver install dir: ``--triton-home``, ``NGA4M_TRITON_HOME``, else ``tools/tritonserver --dir``."""
    home = given or os.environ.get("NGA4M_TRITON_HOME")
    if not home:
        tool = os.path.join(ROOT, "tools", "tritonserver")
        done = subprocess.run([tool, "--dir"], capture_output=True, text=True, check=False)
        home = done.stdout.strip()
        if done.returncode != 0:
            raise SystemExit(f"tritonserver is not installed in {home}: run {tool} (it fetches the pinned nvidia-pytriton wheel)")
    server = os.path.join(home, "pytriton", "tritonserver", "bin", "tritonserver")
    if not os.access(server, os.X_OK):
        raise SystemExit(f"no tritonserver under {home} (expected {server})")
    return home


def _backends_digest():
    """sha256 over our backends' files (names and bytes)."""
    digest = hashlib.sha256()
    for base, dirs, files in sorted(os.walk(BACKENDS)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(base, name)
            digest.update(os.path.relpath(path, BACKENDS).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:16]


def backend_directory(home):
    """Triton's Python backend (with the stub for this interpreter) beside our backends, built once per version of
    ours under ``home`` (copies, not symlinks: Triton refuses a backend library whose real path leaves the backend
    directory)."""
    dist = os.path.join(home, "pytriton", "tritonserver")
    version = "%d.%d" % sys.version_info[:2]
    target = os.path.join(home, f"backends-py{version}-{_backends_digest()}")
    if os.path.isdir(target):
        return target
    stub = os.path.join(dist, "python_backend_stubs", version, "triton_python_backend_stub")
    if not os.path.exists(stub):
        raise SystemExit(f"the pinned tritonserver has no Python backend stub for Python {version} ({stub})")
    partial = tempfile.mkdtemp(prefix=".backends-", dir=home)
    shutil.copytree(os.path.join(dist, "backends", "python"), os.path.join(partial, "python"))
    shutil.copy2(stub, os.path.join(partial, "python", "triton_python_backend_stub"))
    for name in os.listdir(BACKENDS):
        shutil.copytree(os.path.join(BACKENDS, name), os.path.join(partial, name), ignore=shutil.ignore_patterns("__pycache__"))
    try:
        os.rename(partial, target)
    except OSError:  # another server built it first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def repository_url(args):
    """What ``--model-repository`` gets: a directory, or ``s3://<scheme>://<host:port>/<bucket>/<prefix>``."""
    if args.local_path:
        return os.path.join(os.path.abspath(args.local_path), args.prefix) if args.prefix else os.path.abspath(args.local_path)
    endpoint = args.endpoint
    if "://" not in endpoint:
        endpoint = ("https://" if args.secure else "http://") + endpoint
    path = "/".join(p.strip("/") for p in (args.bucket, args.prefix) if p and p.strip("/"))
    return f"s3://{endpoint.rstrip('/')}/{path}"


def command(args, home, backends):
    """The tritonserver argv."""
    argv = [
        os.path.join(home, "pytriton", "tritonserver", "bin", "tritonserver"),
        f"--model-repository={repository_url(args)}",
        f"--backend-directory={backends}",
        f"--cache-directory={os.path.join(home, 'pytriton', 'tritonserver', 'caches')}",
        f"--http-address={args.address}", f"--grpc-address={args.address}", f"--metrics-address={args.address}",
        f"--http-port={args.http_port}", f"--grpc-port={args.grpc_port}", f"--metrics-port={args.metrics_port}",
        "--allow-metrics=true", "--allow-gpu-metrics=false", "--allow-cpu-metrics=true",
        "--strict-readiness=true", "--exit-on-error=true", "--exit-timeout-secs=5", f"--log-verbose={args.log_verbose}",
    ]
    # Triton's Python backend names its shared-memory regions by this prefix: unique per server, so that two
    # servers on one machine never open each other's regions.
    argv.append(f"--backend-config=python,shm-region-prefix-name=nga4m-triton-{os.getpid()}-{secrets.token_hex(4)}")
    if args.poll_secs:
        argv += ["--model-control-mode=poll", f"--repository-poll-secs={args.poll_secs}"]
    return argv


def environment(home):
    """tritonserver's environment: its bundled libraries, and the packages our backend imports inside the stub."""
    env = dict(os.environ)
    libs = os.path.join(home, "nvidia_pytriton.libs")
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libs, env.get("LD_LIBRARY_PATH")) if p)
    site = os.path.join(home, "site-%d.%d" % sys.version_info[:2])
    if not os.path.exists(os.path.join(site, ".complete")):
        raise SystemExit(f"{site} is missing: run tools/tritonserver (it installs the onnxruntime backend's packages)")
    env["NGA4M_TRITON_PYTHONPATH"] = site
    env.setdefault("AWS_DEFAULT_REGION", env.get("NGA4M_S3_REGION", "us-east-1"))
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve a Triton repository with the real tritonserver (nvidia-pytriton's) "
                                                 "and NGA4M's onnxruntime Python-based backend")
    parser.add_argument("--endpoint", default=os.environ.get("NGA4M_S3_ENDPOINT"), help="S3 endpoint host:port or URL (env NGA4M_S3_ENDPOINT)")
    parser.add_argument("--secure", action="store_true", help="HTTPS to a host:port endpoint")
    parser.add_argument("--bucket", default=os.environ.get("NGA4M_S3_BUCKET", "nga4m"))
    parser.add_argument("--local-path", help="serve the repository under this directory instead of S3")
    parser.add_argument("--prefix", default="models/triton", help="repository prefix in the bucket or directory (default %(default)s)")
    parser.add_argument("--address", default="0.0.0.0", help="address of the REST, gRPC and metrics ports (default %(default)s)")
    parser.add_argument("--http-port", type=int, default=8000, help="v2 REST port (default %(default)s)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="v2 gRPC port (default %(default)s)")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default %(default)s)")
    parser.add_argument("--poll-secs", type=int, default=5, help="poll the repository for changes every N seconds; 0 loads once (default %(default)s)")
    parser.add_argument("--log-verbose", type=int, default=0, help="Triton's --log-verbose level")
    parser.add_argument("--triton-home", help="tritonserver install dir (default: env NGA4M_TRITON_HOME, else tools/tritonserver --dir)")
    parser.add_argument("--print-command", action="store_true", help="print the tritonserver command line and exit")
    args = parser.parse_args(argv)
    if not args.local_path and not args.endpoint:
        parser.error("--endpoint (or NGA4M_S3_ENDPOINT) is required without --local-path")

    home = triton_home(args.triton_home)
    env = environment(home)
    argv = command(args, home, backend_directory(home))
    if args.print_command:
        print(" ".join(argv))
        return 0
    sys.stdout.flush()
    os.execve(argv[0], argv, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
