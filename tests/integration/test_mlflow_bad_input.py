"""Role mlflow: bad inputs fail in preflight with a message that says what to fix, and nothing is applied.

Table-driven; runs against real control planes (kube-apiserver, controllers, kwok nodes):
cluster ``pc1`` has the Istio VirtualService CRD (from the Kubeflow manifests fixture) and the
kubeflow namespace, cluster ``noistio`` has neither. After each case the namespaces are those
of before and the role's namespace holds no Secret.
"""

from __future__ import annotations

import pytest

from tests.integration.platform_bed import PlatformBed, failure_text
from tests.integration.test_mlflow_role import istio_fixture

PLAYBOOK = "mlflow_converge.yml"
EXTERNAL_S3 = {"mlflow_artifact_store": "external", "mlflow_s3_endpoint_url": "http://s3.example.com:9000",
               "mlflow_s3_access_key": "ak", "mlflow_s3_secret_key": "sk-0123456789"}

# id, cluster, extra vars, text the failure message must contain
CASES = [
    ("official_image", "pc1", {"mlflow_image": "ghcr.io/mlflow/mlflow:v3.17.2"}, "lacks pymysql and boto3: build"),
    ("latest_tag", "pc1", {"mlflow_mysql_image": "docker.io/library/mysql:latest"}, "must be pinned to a tag other than 'latest'"),
    ("untagged_image", "pc1", {"mlflow_minio_image": "quay.io/minio/minio"}, "must be pinned"),
    ("namespace_not_dns_label", "pc1", {"mlflow_namespace": "ML_flow"}, "must be DNS labels"),
    ("prefix_trailing_slash", "pc1", {"mlflow_path_prefix": "/mlflow/"}, "mlflow_path_prefix must start with '/' and not end with '/'"),
    ("allowed_hosts_wildcard", "pc1", {"mlflow_allowed_hosts": ["*"]}, "'*' (which turns Host validation off) is refused"),
    ("allowed_hosts_url", "pc1", {"mlflow_allowed_hosts": ["https://kubeflow.example.com/"]}, "without scheme or path"),
    ("external_db_without_host", "pc1", {"mlflow_mysql_enabled": False}, "set mlflow_mysql_host"),
    ("password_not_uri_safe", "pc1", {"mlflow_mysql_password": "p@ss/word"}, "may only contain letters, digits"),
    ("mysql_user_root", "pc1", {"mlflow_mysql_user": "root"}, "must not be root"),
    ("bad_storage_size", "pc1", {"mlflow_mysql_storage_size": "ten gigs"}, "must be a Kubernetes quantity"),
    ("unknown_artifact_store", "pc1", {"mlflow_artifact_store": "s3"}, "mlflow_artifact_store"),
    ("external_store_without_endpoint", "pc1", {"mlflow_artifact_store": "external"}, "set mlflow_s3_endpoint_url"),
    ("endpoint_without_scheme", "pc1", {**EXTERNAL_S3, "mlflow_s3_endpoint_url": "s3.example.com:9000"},
     "must be http(s)://host[:port]"),
    ("bad_bucket_name", "pc1", {"mlflow_s3_bucket": "My_Bucket"}, "must be an S3 bucket name"),
    ("gateway_without_namespace", "pc1", {"mlflow_gateway": "kubeflow-gateway"}, "mlflow_gateway must be <namespace>/<name>"),
    ("unserved_virtualservice_version", "pc1", {"mlflow_virtualservice_api_version": "networking.istio.io/v2"},
     "does not serve networking.istio.io/v2 VirtualServices"),
    ("no_istio", "noistio", {}, "CRD virtualservices.networking.istio.io is missing"),
    # plain wrong types, refused by the argument spec
    ("replicas_not_int", "pc1", {"mlflow_replicas": "two"}, "argument 'mlflow_replicas' is of type str and we were unable to convert to int"),
    ("mysql_enabled_not_bool", "pc1", {"mlflow_mysql_enabled": "maybe"},
     "argument 'mlflow_mysql_enabled' is of type str and we were unable to convert to bool"),
    ("resources_not_dict", "pc1", {"mlflow_resources": ["cpu=1"]},
     "argument 'mlflow_resources' is of type list and we were unable to convert to dict"),
    ("allowed_hosts_not_list", "pc1", {"mlflow_allowed_hosts": {"host": "kubeflow.example.com"}},
     "argument 'mlflow_allowed_hosts' is of type dict and we were unable to convert to list"),
    ("pull_secrets_not_dicts", "pc1", {"mlflow_image_pull_secrets": "regcred"},
     "Elements value for option 'mlflow_image_pull_secrets' is of type str and we were unable to convert to dict"),
]


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("mlflow-bad"), clusters=("pc1", "noistio"))
    istio_fixture(bed, "pc1")
    yield bed
    bed.stop()


def _failed(run) -> tuple[str, str, str]:
    """(task name, task path, message) of the first failed task."""
    for play in run.data.get("plays", []):
        for task in play.get("tasks", []):
            for res in task.get("hosts", {}).values():
                if res.get("failed"):
                    return task["task"]["name"], task["task"].get("path", ""), str(res.get("msg", ""))
    return "", "", ""


@pytest.mark.parametrize(("case_id", "cluster", "extra", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_in_preflight(bed, case_id, cluster, extra, expected):
    inv = bed.inventory(pc=(cluster,), sc=(), name=f"{case_id}.yml")
    namespaces_before = [n["metadata"]["name"] for n in bed.list(cluster, "v1", "Namespace")]
    run = bed.run(PLAYBOOK, inv, extra_vars=extra)
    assert run.rc != 0, failure_text(run)
    name, path, msg = _failed(run)
    assert name, failure_text(run)
    # argument-spec validation or a preflight task, never a later phase
    assert "preflight.yml" in path or "Validating arguments" in name, (name, path, msg)
    assert expected in msg, msg
    # nothing was applied
    assert [n["metadata"]["name"] for n in bed.list(cluster, "v1", "Namespace")] == namespaces_before
    assert bed.list(cluster, "v1", "Secret", extra.get("mlflow_namespace", "mlflow")) == []
