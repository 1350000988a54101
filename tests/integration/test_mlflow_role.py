"""Role mlflow on a real primary control plane (kube-apiserver, controllers, kwok nodes).

Converges the role (after creating what Kubeflow leaves behind: Istio's VirtualService CRD,
from the Kubeflow manifests fixture with its typed schema, and the kubeflow namespace), then
asserts the Secrets, PVCs (bound by the real PersistentVolume controller), Deployments
(Available: kwok runs their pods as Ready), Services, the bucket Job (Complete: kwok lets its
pod succeed) and the VirtualService route as the API server stores them; a second run
changes nothing and keeps the generated credentials; ``--check --diff`` changes nothing on
the converged cluster and creates nothing on a fresh one; a changed bucket spec runs a new
bucket Job and removes the old one.
"""

from __future__ import annotations

import base64
import time

import pytest
import yaml

from tests.integration.platform_bed import FIXTURES, PlatformBed, failure_text

NS = "mlflow"
PLAYBOOK = "mlflow_converge.yml"
VS_CRD = FIXTURES / "kubeflow_manifests" / "common" / "crds" / "virtualservices.yaml"


def istio_fixture(bed: PlatformBed, cluster: str, timeout: float = 60) -> None:
    """What Kubeflow leaves behind that the role relies on: the VirtualService CRD (Established) and the kubeflow namespace."""
    from kubernetes import dynamic  # noqa: PLC0415

    dyn = dynamic.DynamicClient(bed.api(cluster))
    crd = yaml.safe_load(VS_CRD.read_text())
    dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition").create(body=crd)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}
    dyn.resources.get(api_version="v1", kind="Namespace").create(body=namespace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = bed.get(cluster, "apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])
        if any(c["type"] == "Established" and c["status"] == "True" for c in (live.get("status") or {}).get("conditions") or []):
            return
        time.sleep(0.2)
    raise AssertionError(f"CRD {crd['metadata']['name']} not Established on {cluster} after {timeout}s")


def secret_values(bed, cluster="pc1") -> dict:
    out = {}
    for name in ("mlflow-mysql", "mlflow-s3"):
        sec = bed.get(cluster, "v1", "Secret", name, NS)
        assert sec is not None, name
        out[name] = {k: base64.b64decode(v).decode() for k, v in sec["data"].items()}
    return out


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("mlflow"), clusters=("pc1", "fresh"))
    for cluster in ("pc1", "fresh"):
        istio_fixture(bed, cluster)
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def inventory(bed):
    return bed.inventory(pc=("pc1",), sc=())


@pytest.fixture(scope="module")
def first_run(bed, inventory):
    run = bed.run(PLAYBOOK, inventory, extra_vars={"mlflow_wait_timeout": 60})
    assert run.rc == 0, failure_text(run)
    assert run.changed_total() > 0
    return run


def test_credentials_are_generated_and_secret(bed, first_run):
    values = secret_values(bed)
    mysql, s3 = values["mlflow-mysql"], values["mlflow-s3"]
    assert set(mysql) == {"MYSQL_USER", "MYSQL_DATABASE", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"}
    assert mysql["MYSQL_USER"] == "mlflow" and mysql["MYSQL_DATABASE"] == "mlflow"
    assert len(mysql["MYSQL_PASSWORD"]) == 32 and mysql["MYSQL_PASSWORD"].isalnum()
    assert len(mysql["MYSQL_ROOT_PASSWORD"]) == 32 and mysql["MYSQL_ROOT_PASSWORD"] != mysql["MYSQL_PASSWORD"]
    assert len(s3["AWS_SECRET_ACCESS_KEY"]) == 40 and s3["AWS_ACCESS_KEY_ID"].startswith("mlflow")
    # no_log: no secret value shows up anywhere in the run's output
    for value in (mysql["MYSQL_PASSWORD"], mysql["MYSQL_ROOT_PASSWORD"], s3["AWS_SECRET_ACCESS_KEY"]):
        assert value not in first_run.stdout and value not in first_run.stderr


def test_mysql_and_minio_objects(bed, first_run):
    for name in ("mlflow-mysql", "mlflow-minio"):
        pvc = bed.get("pc1", "v1", "PersistentVolumeClaim", name, NS)
        assert pvc is not None, name
        assert bed.get("pc1", "v1", "Service", name, NS) is not None, name
        assert pvc["status"]["phase"] == "Bound", (name, pvc["status"])  # the real PV controller bound it
        dep = bed.get("pc1", "apps/v1", "Deployment", name, NS)
        assert dep["spec"]["strategy"]["type"] == "Recreate"
        assert _available(dep), (name, dep["status"])
        assert dep["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == name
    mysql = bed.get("pc1", "apps/v1", "Deployment", "mlflow-mysql", NS)["spec"]["template"]["spec"]["containers"][0]
    assert mysql["image"] == "docker.io/library/mysql:8.4.6"
    assert mysql["envFrom"] == [{"secretRef": {"name": "mlflow-mysql"}}]
    assert "readinessProbe" in mysql
    assert bed.get("pc1", "v1", "PersistentVolumeClaim", "mlflow-mysql", NS)["spec"]["resources"]["requests"]["storage"] == "10Gi"
    minio = bed.get("pc1", "apps/v1", "Deployment", "mlflow-minio", NS)["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in minio["env"] if "valueFrom" in e} == {
        "MINIO_ROOT_USER": {"name": "mlflow-s3", "key": "AWS_ACCESS_KEY_ID"},
        "MINIO_ROOT_PASSWORD": {"name": "mlflow-s3", "key": "AWS_SECRET_ACCESS_KEY"},
    }


def _available(dep: dict) -> bool:
    return any(c["type"] == "Available" and c["status"] == "True" for c in (dep.get("status") or {}).get("conditions") or [])


def test_bucket_job(bed, first_run):
    jobs = bed.list("pc1", "batch/v1", "Job", NS)
    assert len(jobs) == 1
    job = jobs[0]
    assert job["status"].get("succeeded") == 1, job["status"]  # its pod succeeded (kwok), the Job controller completed it
    assert job["metadata"]["name"].startswith("mlflow-bucket-")
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "mc mb --ignore-existing" in script or "mb --ignore-existing" in script
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://mlflow-minio.mlflow.svc.cluster.local:9000"
    assert env["MLFLOW_S3_BUCKET"] == "mlflow"


def test_tracking_server_deployment(bed, first_run):
    dep = bed.get("pc1", "apps/v1", "Deployment", "mlflow", NS)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert container["command"] == ["mlflow", "server"]
    uri = args[args.index("--backend-store-uri") + 1]
    assert uri == "mysql+pymysql://mlflow:$(MLFLOW_DB_PASSWORD)@mlflow-mysql.mlflow.svc.cluster.local:3306/mlflow"
    assert secret_values(bed)["mlflow-mysql"]["MYSQL_PASSWORD"] not in " ".join(args)
    assert args[args.index("--artifacts-destination") + 1] == "s3://mlflow/artifacts"
    assert args[args.index("--static-prefix") + 1] == "/mlflow"
    assert "--serve-artifacts" in args
    assert "mlflow.mlflow.svc.cluster.local:*" in args[args.index("--allowed-hosts") + 1].split(",")
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-mysql", "key": "MYSQL_PASSWORD"}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://mlflow-minio.mlflow.svc.cluster.local:9000"
    assert env["MLFLOW_S3_IGNORE_TLS"]["value"] == "false"
    assert container["readinessProbe"]["httpGet"]["path"] == "/mlflow/health"
    assert pod["initContainers"][0]["name"] == "wait-for-database"
    svc = bed.get("pc1", "v1", "Service", "mlflow", NS)
    assert svc["spec"]["ports"][0]["port"] == 5000
    assert _available(dep), dep["status"]


def test_virtualservice_route(bed, first_run):
    vs = bed.get("pc1", "networking.istio.io/v1", "VirtualService", "mlflow", "kubeflow")
    assert vs is not None
    assert vs["spec"]["gateways"] == ["kubeflow/kubeflow-gateway"]
    routes = {r["name"]: r for r in vs["spec"]["http"]}
    route = routes["mlflow"]
    assert route["match"] == [{"uri": {"prefix": "/mlflow/"}}]
    assert "rewrite" not in route  # the server serves everything under --static-prefix /mlflow
    assert route["route"][0]["destination"] == {"host": "mlflow.mlflow.svc.cluster.local", "port": {"number": 5000}}
    assert routes["mlflow-redirect"]["redirect"] == {"uri": "/mlflow/"}
    assert route["timeout"] == "300s"


def test_virtualservice_schema_refuses_a_misspelled_field(bed, first_run):
    """The route went through a typed schema: the same object with a misspelled field is refused, not trimmed."""
    from kubernetes import dynamic  # noqa: PLC0415
    from kubernetes.dynamic.exceptions import DynamicApiError  # noqa: PLC0415

    vs = bed.get("pc1", "networking.istio.io/v1", "VirtualService", "mlflow", "kubeflow")
    body = {"apiVersion": vs["apiVersion"], "kind": vs["kind"],
            "metadata": {"name": "mlflow", "namespace": "kubeflow"}, "spec": dict(vs["spec"])}
    body["spec"]["http"] = [dict(r) for r in vs["spec"]["http"]]
    [route] = [r for r in body["spec"]["http"] if r["name"] == "mlflow"]
    route["timout"] = route.pop("timeout")
    dyn = dynamic.DynamicClient(bed.api("pc1"))
    res = dyn.resources.get(api_version="networking.istio.io/v1", kind="VirtualService")
    with pytest.raises(DynamicApiError) as refused:
        dyn.server_side_apply(res, body=body, field_manager="nga4m-test", force_conflicts=True)
    assert "timout" in str(refused.value.body) and "field not declared in schema" in str(refused.value.body), refused.value.body
    assert bed.get("pc1", "networking.istio.io/v1", "VirtualService", "mlflow", "kubeflow")["spec"] == vs["spec"]


def test_second_run_changes_nothing_and_keeps_credentials(bed, inventory, first_run):
    before = secret_values(bed)
    run = bed.run(PLAYBOOK, inventory, extra_vars={"mlflow_wait_timeout": 60})
    assert run.rc == 0, failure_text(run)
    assert run.changed_total() == 0, failure_text(run)
    assert secret_values(bed) == before


def test_check_mode_on_converged_cluster_changes_nothing(bed, inventory, first_run):
    before = secret_values(bed)
    run = bed.run(PLAYBOOK, inventory, check=True, diff=True)
    assert run.rc == 0, failure_text(run)
    assert run.changed_total() == 0, failure_text(run)
    assert secret_values(bed) == before


def test_check_mode_on_fresh_cluster_creates_nothing(bed):
    inv = bed.inventory(pc=("fresh",), sc=(), name="fresh.yml")
    before = bed.list("fresh", "v1", "Namespace")
    run = bed.run(PLAYBOOK, inv, check=True, diff=True)
    assert run.rc == 0, failure_text(run)
    assert run.changed_total() > 0  # the namespace (and the route) would be created
    assert bed.list("fresh", "v1", "Namespace") == before
    assert bed.get("fresh", "v1", "Namespace", NS) is None
    assert bed.list("fresh", "networking.istio.io/v1", "VirtualService", "kubeflow") == []


def test_supplied_password_wins_and_changed_bucket_spec_runs_a_new_job(bed, inventory, first_run):
    old_job = bed.list("pc1", "batch/v1", "Job", NS)[0]["metadata"]["name"]
    run = bed.run(PLAYBOOK, inventory, extra_vars={"mlflow_wait_timeout": 60, "mlflow_s3_bucket": "mlflow-two",
                                                   "mlflow_mysql_root_password": "Supplied-root.pw_1"})
    assert run.rc == 0, failure_text(run)
    jobs = [j["metadata"]["name"] for j in bed.list("pc1", "batch/v1", "Job", NS)]
    assert len(jobs) == 1 and jobs[0] != old_job, jobs
    assert secret_values(bed)["mlflow-mysql"]["MYSQL_ROOT_PASSWORD"] == "Supplied-root.pw_1"
    assert "Supplied-root.pw_1" not in run.stdout
