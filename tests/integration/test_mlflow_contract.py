"""MLflow contract test: the role's exact tracking-server container, run locally.

The role renders the container (command, args, env) of the MLflow Deployment from one
source (``roles/mlflow`` entry point ``render``). This test renders it with
``ansible-playbook`` — endpoints (MySQL host/port, S3 endpoint, listen address/port) are
the only things changed, and only through role variables — resolves the env the way
the kubelet does (``valueFrom.secretKeyRef`` from the Secrets the role would create,
``$(VAR)`` expansion in args), and runs that command line against:

* a real MariaDB (Debian ``mariadb-server``) on loopback, with the database and user
  created the way the MySQL image's ``MYSQL_DATABASE``/``MYSQL_USER``/``MYSQL_PASSWORD`` do;
* a real S3 server (MinIO, ``tests/helpers/s3.py``) on loopback with the bucket created.

Then: the tracking API answers under the ``/mlflow`` prefix, Host validation behaves,
a run with a metric and an artifact is logged with the MLflow client, and the artifact
object lands in the bucket.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.playbook import REPO, run_playbook
from tests.helpers.procs import ManagedProcess, free_port, wait_http
from tests.helpers.mariadb import MariaDB
from tests.helpers.s3 import S3Server

RENDER_PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "mlflow_render.yml"
BUCKET = "mlflow"
DB_NAME = "mlflow"
DB_USER = "mlflow"
PREFIX = "/mlflow"

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def k8s_expand(text: str, env: dict) -> str:
    """Expand ``$(VAR)`` like the kubelet does for command/args/env values.

    ``$$`` is an escaped ``$``; ``$(VAR)`` becomes the value of VAR when defined and
    stays verbatim otherwise.
    """

    def repl(match):
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_REF.sub(repl, text)


def container_env(container: dict, secret_data: dict) -> dict:
    """The container's environment, in order, as the kubelet builds it."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = k8s_expand(str(item["value"]), env)
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secret_data[(ref["name"], ref["key"])]
    return env


def generated_password(length: int = 32) -> str:
    """Same alphabet as the role's generated passwords (letters and digits)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _i in range(length))


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def render_container(extra_vars: dict) -> dict:
    run = run_playbook(RENDER_PLAYBOOK, extra_vars=extra_vars)
    assert run.rc == 0, f"render failed rc={run.rc}\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return run.result("Show the rendered container")["_mlflow_server_container"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """MariaDB + MinIO + the rendered ``mlflow server``; yields a dict describing them."""
    work = tmp_path_factory.mktemp("mlflow-contract")
    timings: dict[str, float] = {}
    started: list = []
    t0 = time.monotonic()
    try:
        db = MariaDB(work)
        started.append(db)
        db_password = generated_password()
        db.create_database(DB_NAME, DB_USER, db_password)
        timings["mariadb"] = time.monotonic() - t0

        s3 = S3Server(work)
        started.append(s3)
        s3.client().make_bucket(BUCKET)

        port = free_port()
        t1 = time.monotonic()
        container = render_container(
            {
                "mlflow_mysql_enabled": False,
                "mlflow_mysql_host": "127.0.0.1",
                "mlflow_mysql_port": db.port,
                "mlflow_artifact_store": "external",
                "mlflow_s3_endpoint_url": s3.url,
                "mlflow_s3_bucket": BUCKET,
                "mlflow_bind_address": "127.0.0.1",
                "mlflow_port": port,
            }
        )
        timings["render"] = time.monotonic() - t1

        # The values the role's Secrets hold (mlflow-mysql / mlflow-s3).
        secret_data = {
            ("mlflow-mysql", "MYSQL_PASSWORD"): db_password,
            ("mlflow-s3", "AWS_ACCESS_KEY_ID"): s3.access_key,
            ("mlflow-s3", "AWS_SECRET_ACCESS_KEY"): s3.secret_key,
        }
        env = container_env(container, secret_data)
        argv = [k8s_expand(a, env) for a in container["command"] + container["args"]]
        exe = shutil.which(argv[0], path=str(Path(sys.executable).parent))
        assert exe, f"{argv[0]} not found next to {sys.executable}"
        # A container starts with only its own env: run with a clean environment (+ PATH/HOME).
        home = work / "home"
        home.mkdir()
        clean = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home), **env}
        t2 = time.monotonic()
        server = ManagedProcess(
            ["/usr/bin/env", "-i", *[f"{k}={v}" for k, v in clean.items()], exe, *argv[1:]],
            log_path=work / "mlflow.log",
            cwd=str(work),
        )
        started.append(server)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}{PREFIX}/health", timeout=300, proc=server.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- mlflow log ---\n{server.log_text()[-6000:]}") from exc
        timings["mlflow_start"] = time.monotonic() - t2
        yield {
            "container": container,
            "argv": argv,
            "env": env,
            "db_password": db_password,
            "base": base,
            "port": port,
            "s3": s3,
            "server": server,
            "work": work,
            "timings": timings,
        }
    finally:
        for proc in reversed(started):
            proc.stop()
        timings["total"] = time.monotonic() - t0
        print(f"\nmlflow contract timings (s): { {k: round(v, 1) for k, v in timings.items()} }")


def test_rendered_container_keeps_the_password_out_of_the_args(stack):
    args = stack["container"]["args"]
    joined = " ".join(args)
    assert stack["db_password"] not in joined
    assert "$(MLFLOW_DB_PASSWORD)" in joined
    assert stack["container"]["command"] == ["mlflow", "server"]
    for flag in ("--backend-store-uri", "--artifacts-destination", "--serve-artifacts", "--static-prefix", "--allowed-hosts"):
        assert flag in args, flag
    assert args[args.index("--static-prefix") + 1] == PREFIX
    assert args[args.index("--artifacts-destination") + 1] == f"s3://{BUCKET}/artifacts"
    # Only endpoints were substituted: the expanded URI points at the local MariaDB.
    uri = stack["argv"][stack["argv"].index("--backend-store-uri") + 1]
    assert uri.startswith(f"mysql+pymysql://{DB_USER}:{stack['db_password']}@127.0.0.1:")
    env = stack["env"]
    assert env["MLFLOW_S3_ENDPOINT_URL"] == stack["s3"].url
    assert env["MLFLOW_S3_IGNORE_TLS"] == "false"


def test_tracking_api_answers_under_the_prefix(stack):
    base = stack["base"]
    status, body = http("POST", f"{base}{PREFIX}/api/2.0/mlflow/experiments/search", {"max_results": 10})
    assert status == 200, body
    assert any(e["name"] == "Default" for e in json.loads(body)["experiments"])
    # Everything lives under the static prefix (what the VirtualService forwards unchanged).
    status = http("POST", f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})[0]
    assert status == 404


def test_host_header_validation(stack):
    base = stack["base"]
    url = f"{base}{PREFIX}/api/2.0/mlflow/experiments/search"
    port = stack["container"]["ports"][0]["containerPort"]
    status, body = http("POST", url, {"max_results": 1}, {"Host": f"mlflow.mlflow.svc.cluster.local:{port}"})
    assert status == 200, body
    status = http("POST", url, {"max_results": 1}, {"Host": "attacker.example.invalid"})[0]
    assert status in (400, 403)


CLIENT = r"""
import json, os, sys, tempfile
import mlflow
mlflow.set_tracking_uri(os.environ["NGA4M_TRACKING_URI"])
exp_id = mlflow.create_experiment("nga4m-contract")
with mlflow.start_run(experiment_id=exp_id) as run:
    mlflow.log_param("alpha", "0.5")
    mlflow.log_metric("accuracy", 0.97)
    d = tempfile.mkdtemp()
    p = os.path.join(d, "hello.txt")
    with open(p, "w") as fh:
        fh.write("hello from nga4m\n")
    mlflow.log_artifact(p, artifact_path="notes")
print(json.dumps({"experiment_id": exp_id, "run_id": run.info.run_id, "artifact_uri": run.info.artifact_uri}))
"""


def test_run_with_metric_and_artifact_lands_in_the_bucket(stack, tmp_path):
    base = stack["base"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "NGA4M_TRACKING_URI": f"{base}{PREFIX}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", CLIENT], capture_output=True, text=True, env=env, timeout=300, check=False, cwd=str(tmp_path)
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}\n--- server ---\n{stack['server'].log_text()[-4000:]}"
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["artifact_uri"].startswith("mlflow-artifacts:/"), info

    status, body = http("GET", f"{base}{PREFIX}/api/2.0/mlflow/runs/get?run_id={info['run_id']}")
    assert status == 200, body
    run = json.loads(body)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]} == {"accuracy": 0.97}
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"alpha": "0.5"}

    status, body = http("GET", f"{base}{PREFIX}/api/2.0/mlflow/artifacts/list?run_id={info['run_id']}&path=notes")
    assert status == 200, body
    assert [f["path"] for f in json.loads(body)["files"]] == ["notes/hello.txt"]

    key = f"artifacts/{info['experiment_id']}/{info['run_id']}/artifacts/notes/hello.txt"
    keys = stack["s3"].keys(BUCKET)
    assert key in keys, keys
    obj = stack["s3"].client().get_object(BUCKET, key)
    try:
        assert obj.read() == b"hello from nga4m\n"
    finally:
        obj.close()
        obj.release_conn()
