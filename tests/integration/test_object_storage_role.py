"""Role object_storage against a real S3 server (MinIO) and real SC control planes (kwok nodes).

Checks the bucket and its hierarchy (prefix markers), the uploaded data set, and
per SC a least-privilege deployer: ServiceAccount + Role limited to
InferenceServices in the models namespace + RoleBinding, whose bound token
(TokenRequest, issued by the SC's own API server) is assembled into a kubeconfig stored
under ``kubeconfigs/<sc>``. The stored kubeconfig is used as is against the real API
servers: its SC authenticates it as the deployer ServiceAccount and RBAC lets it manage
InferenceServices in the models namespace and nothing else; another SC refuses the token.
A second run rewrites nothing; a short renewal threshold re-issues the token;
secrets never reach the output; the controller-only option writes 0600 files;
teardown removes kubeconfigs and RBAC but keeps the data.
"""

from __future__ import annotations

import base64
import json
import stat

import pytest
import yaml

from tests.helpers.s3 import S3Server
from tests.integration.platform_bed import PlatformBed, failure_text

BUCKET = "nga4m-test"
IRIS = "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    yield server
    server.proc.stop()


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("os"), clusters=("sc1", "sc2", "sc3"))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def setup(bed, s3, tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "iris.csv"
    data.write_text(IRIS)
    inventory = bed.inventory(pc=(), sc=("sc1", "sc2"))
    extra = {
        "object_storage_endpoint": s3.endpoint, "object_storage_access_key": s3.access_key,
        "object_storage_secret_key": s3.secret_key, "object_storage_bucket": BUCKET,
        "object_storage_files": [{"src": str(data), "key": "datasets/iris/iris.csv"}],
    }
    run = bed.run("object_storage_role.yml", inventory, extra_vars=extra)
    assert run.rc == 0, failure_text(run)
    return {"inventory": inventory, "extra": extra, "run": run}


def _get(s3, key):
    resp = s3.client().get_object(BUCKET, key)
    try:
        return resp.read().decode()
    finally:
        resp.close()
        resp.release_conn()


def test_check_mode_on_fresh_cluster_and_bucket(bed, s3, setup):
    inventory = bed.inventory(pc=(), sc=("sc3",), name="inventory-fresh.yml")
    extra = dict(setup["extra"], object_storage_bucket="fresh-bucket")  # with the data files: they go into the missing bucket
    run = bed.run("object_storage_role.yml", inventory, extra_vars=extra, check=True, diff=True)
    assert run.rc == 0, failure_text(run)
    assert not s3.client().bucket_exists("fresh-bucket")
    assert bed.get("sc3", "v1", "Namespace", "models") is None


def test_bucket_and_hierarchy(s3, setup):
    keys = s3.keys(BUCKET)
    for marker in ("datasets/.keep", "models/triton/.keep", "kubeconfigs/.keep"):
        assert marker in keys
    assert _get(s3, "datasets/iris/iris.csv") == IRIS


def test_deployer_kubeconfig_per_sc(bed, s3, setup):
    for sc in ("sc1", "sc2"):
        cfg = yaml.safe_load(_get(s3, f"kubeconfigs/{sc}"))
        assert cfg["current-context"] == sc
        assert cfg["clusters"][0]["cluster"]["server"] == bed.clusters[sc]["server"]
        ctx = cfg["contexts"][0]["context"]
        assert ctx["namespace"] == "models"
        token = cfg["users"][0]["user"]["token"]
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=" * (-len(token.split(".")[1]) % 4)))
        assert payload["sub"] == "system:serviceaccount:models:model-deployer"
        assert "client-certificate-data" not in cfg["users"][0]["user"]  # never the admin credentials


def _client(cfg: dict, server: str | None = None):
    """An API client from a stored deployer kubeconfig (optionally aimed at another server)."""
    from kubernetes import config  # noqa: PLC0415

    cfg = json.loads(json.dumps(cfg))
    if server:
        cfg["clusters"][0]["cluster"]["server"] = server
    return config.new_client_from_config_dict(cfg)


def _can(api, verb: str, resource: str, group: str = "", namespace: str = "models", subresource: str = "") -> bool:
    from kubernetes import client  # noqa: PLC0415

    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group, namespace=namespace,
                                                        subresource=subresource)))
    return client.AuthorizationV1Api(api).create_self_subject_access_review(review).status.allowed


def test_deployer_kubeconfig_works_and_is_least_privilege(bed, s3, setup):
    """The stored kubeconfig, as is, against the real API servers: authenticated as the deployer, RBAC-limited."""
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    for sc in ("sc1", "sc2"):
        cfg = yaml.safe_load(_get(s3, f"kubeconfigs/{sc}"))
        api = _client(cfg)
        who = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
        assert who.status.user_info.username == "system:serviceaccount:models:model-deployer"
        for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
            assert _can(api, verb, "inferenceservices", "serving.kserve.io"), verb
        assert _can(api, "get", "inferenceservices", "serving.kserve.io", subresource="status")
        assert not _can(api, "update", "inferenceservices", "serving.kserve.io", subresource="status")
        assert not _can(api, "create", "inferenceservices", "serving.kserve.io", namespace="default")
        assert not _can(api, "get", "secrets")
        assert not _can(api, "create", "pods")
        assert not _can(api, "create", "deployments", "apps")
    # Each SC's API server has its own token issuer: sc1's token means nothing to sc2.
    other = _client(yaml.safe_load(_get(s3, "kubeconfigs/sc1")), server=bed.clusters["sc2"]["server"])
    with pytest.raises(ApiException) as refused:
        client.AuthenticationV1Api(other).create_self_subject_review(client.V1SelfSubjectReview())
    assert refused.value.status == 401


def test_role_allows_only_inferenceservices(bed, setup):
    for sc in ("sc1", "sc2"):
        role = bed.get(sc, "rbac.authorization.k8s.io/v1", "Role", "model-deployer", "models")
        assert role["rules"] == [
            {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"],
             "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices/status"], "verbs": ["get", "list", "watch"]},
        ]
        binding = bed.get(sc, "rbac.authorization.k8s.io/v1", "RoleBinding", "model-deployer", "models")
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "model-deployer"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "model-deployer", "namespace": "models"}]
        assert bed.list(sc, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding") == [] or all(
            s.get("name") != "model-deployer" for b in bed.list(sc, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
            for s in b.get("subjects") or [])


def test_secrets_never_logged(s3, setup):
    token = yaml.safe_load(_get(s3, "kubeconfigs/sc1"))["users"][0]["user"]["token"]
    for text in (setup["run"].stdout, setup["run"].stderr):
        assert s3.secret_key not in text
        assert token not in text


def test_second_run_and_check_mode_rewrite_nothing(bed, s3, setup):
    before = {sc: _get(s3, f"kubeconfigs/{sc}") for sc in ("sc1", "sc2")}
    check = bed.run("object_storage_role.yml", setup["inventory"], extra_vars=setup["extra"], check=True, diff=True)
    assert check.rc == 0 and check.changed_total() == 0, failure_text(check)
    again = bed.run("object_storage_role.yml", setup["inventory"], extra_vars=setup["extra"])
    assert again.rc == 0 and again.changed_total() == 0, failure_text(again)
    assert {sc: _get(s3, f"kubeconfigs/{sc}") for sc in ("sc1", "sc2")} == before


def test_token_renewed_when_expiring_soon(bed, s3, setup):
    before = _get(s3, "kubeconfigs/sc1")
    extra = dict(setup["extra"], object_storage_deployer_token_renew_before=7775999)
    run = bed.run("object_storage_role.yml", setup["inventory"], extra_vars=extra)
    assert run.rc == 0, failure_text(run)
    after = _get(s3, "kubeconfigs/sc1")
    assert after != before
    assert yaml.safe_load(after)["users"][0]["user"]["token"] != yaml.safe_load(before)["users"][0]["user"]["token"]


def test_kubeconfigs_on_controller_only(bed, s3, setup, tmp_path):
    extra = dict(setup["extra"], object_storage_kubeconfigs_on_controller_only=True,
                 object_storage_kubeconfigs_controller_dir=str(tmp_path / "kc"))
    run = bed.run("object_storage_role.yml", setup["inventory"], extra_vars=extra)
    assert run.rc == 0, failure_text(run)
    for sc in ("sc1", "sc2"):
        path = tmp_path / "kc" / sc
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert yaml.safe_load(path.read_text())["current-context"] == sc
    again = bed.run("object_storage_role.yml", setup["inventory"], extra_vars=extra)
    assert again.rc == 0 and again.changed_total() == 0, failure_text(again)


def test_teardown_keeps_data(bed, s3, setup):
    run = bed.run("object_storage_teardown.yml", setup["inventory"], extra_vars=setup["extra"])
    assert run.rc == 0, failure_text(run)
    keys = s3.keys(BUCKET)
    assert "kubeconfigs/sc1" not in keys and "kubeconfigs/sc2" not in keys
    assert "datasets/iris/iris.csv" in keys and "datasets/.keep" in keys
    assert bed.get("sc1", "rbac.authorization.k8s.io/v1", "Role", "model-deployer", "models") is None
    assert bed.get("sc1", "v1", "ServiceAccount", "model-deployer", "models") is None
