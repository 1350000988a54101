"""The model deployer's least privilege, proved against a real API server's RBAC.

The object_storage role gives each secondary cluster a deployer: a ServiceAccount, a Role
limited to InferenceServices in the models namespace, its RoleBinding, and a kubeconfig
with a bound ServiceAccount token (TokenRequest) stored in the shared object storage. On the
bed's real kube-apiserver (RBAC authorization, its own token issuer) that kubeconfig:

- may create, read, patch and delete InferenceServices in ``models`` (the real KServe CRDs,
  from KServe's own kserve-crd chart);
- gets 403 Forbidden for Secrets and ConfigMaps in ``models``, for InferenceServices in
  another namespace, and for cluster-scoped objects (Namespaces, ClusterServingRuntimes);
- gets 401 Unauthorized from another cluster's API server (each cluster signs and accepts
  only its own tokens);

and ``playbooks/verify.yml`` checks exactly this with SelfSubjectAccessReviews: PASS as the
role left it, FAIL naming the extra permission when the Role is widened by hand, PASS again
after the role re-converges (its server-side apply restores the rules).
"""

from __future__ import annotations

import pytest
import yaml

from tests.helpers.bed import CHART_REPO
from tests.helpers.kubebed import pins
from tests.helpers.playbook import REPO, run_playbook
from tests.helpers.s3 import S3Server
from tests.integration.platform_bed import PlatformBed, failure_text

BUCKET = "nga4m-rbac"
NS = "models"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("rbac"), clusters=("pc1", "sc1"))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def setup(bed, s3):
    # The real KServe CRDs (KServe's kserve-crd chart, as the kserve role installs it).
    crds = bed.helm("sc1", "upgrade", "--install", "kserve-crd", f"{CHART_REPO}/kserve-crd", "--version",
                    pins()["NGA4M_KSERVE_VERSION"], "-n", "kserve", "--create-namespace", "--wait")
    assert crds.returncode == 0, crds.stdout + crds.stderr
    extra = {"object_storage_endpoint": s3.endpoint, "object_storage_access_key": s3.access_key,
             "object_storage_secret_key": s3.secret_key, "object_storage_bucket": BUCKET, "object_storage_secure": False}
    inventory = bed.inventory(sc=("sc1",))
    run = bed.run("object_storage_role.yml", inventory, extra_vars=extra)
    assert run.rc == 0, failure_text(run)
    resp = s3.client().get_object(BUCKET, "kubeconfigs/sc1")
    try:
        kubeconfig = yaml.safe_load(resp.read())
    finally:
        resp.close()
        resp.release_conn()
    return {"inventory": inventory, "extra": extra, "kubeconfig": kubeconfig}


def _client(kubeconfig: dict):
    from kubernetes import config, dynamic  # noqa: PLC0415

    return dynamic.DynamicClient(config.new_client_from_config_dict(kubeconfig))


def _isvc(namespace: str, name: str = "rbac-probe") -> dict:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "onnx"}, "storageUri": f"s3://{BUCKET}/models/triton"}}}}


def test_the_deployer_token_is_a_bound_service_account_token(setup):
    user = setup["kubeconfig"]["users"][0]["user"]
    assert set(user) == {"token"}, sorted(user)  # a token, not the admin's client certificate
    review = _client(setup["kubeconfig"]).resources.get(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview").create(
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    info = review.status.userInfo
    assert info.username == f"system:serviceaccount:{NS}:model-deployer", info
    assert "system:serviceaccounts" in info.groups


def test_the_deployer_manages_inferenceservices_in_models(setup):
    client = _client(setup["kubeconfig"])
    isvc = client.resources.get(api_version="serving.kserve.io/v1beta1", kind="InferenceService")
    created = client.server_side_apply(isvc, body=_isvc(NS), namespace=NS, field_manager="rbac-test", force_conflicts=True)
    assert created.metadata.uid
    patched = isvc.patch(name="rbac-probe", namespace=NS, body={"metadata": {"annotations": {"nga4m.io/probe": "1"}}},
                         content_type="application/merge-patch+json")
    assert patched.metadata.annotations["nga4m.io/probe"] == "1"
    assert isvc.get(name="rbac-probe", namespace=NS).metadata.name == "rbac-probe"
    assert [i.metadata.name for i in isvc.get(namespace=NS).items] == ["rbac-probe"]
    isvc.delete(name="rbac-probe", namespace=NS)


@pytest.mark.parametrize(
    ("what", "call"),
    [
        ("get a Secret in models", lambda c: c.resources.get(api_version="v1", kind="Secret").get(name="kserve-s3", namespace=NS)),
        ("list Secrets in models", lambda c: c.resources.get(api_version="v1", kind="Secret").get(namespace=NS)),
        ("list ConfigMaps in models", lambda c: c.resources.get(api_version="v1", kind="ConfigMap").get(namespace=NS)),
        ("create an InferenceService in default", lambda c: c.resources.get(
            api_version="serving.kserve.io/v1beta1", kind="InferenceService").create(body=_isvc("default"), namespace="default")),
        ("list Namespaces", lambda c: c.resources.get(api_version="v1", kind="Namespace").get()),
        ("create a ClusterServingRuntime", lambda c: c.resources.get(
            api_version="serving.kserve.io/v1alpha1", kind="ClusterServingRuntime").create(body={
                "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterServingRuntime", "metadata": {"name": "rbac-probe"},
                "spec": {"containers": [{"name": "kserve-container", "image": "busybox"}]}})),
        ("create a RoleBinding in models", lambda c: c.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding").create(
            namespace=NS, body={"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "escalate"},
                                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                                "subjects": [{"kind": "ServiceAccount", "name": "model-deployer", "namespace": NS}]})),
    ],
)
def test_the_deployer_is_forbidden_everything_else(setup, what, call):
    from kubernetes.dynamic.exceptions import ForbiddenError  # noqa: PLC0415

    with pytest.raises(ForbiddenError) as err:
        call(_client(setup["kubeconfig"]))
    assert err.value.status == 403, what
    assert "system:serviceaccount:models:model-deployer" in err.value.body.decode(), err.value.body


def test_another_cluster_refuses_the_token(bed, setup):
    from kubernetes.dynamic.exceptions import UnauthorizedError  # noqa: PLC0415

    other = yaml.safe_load(open(bed.kubeconfig("pc1")).read())  # noqa: SIM115 - small file
    kubeconfig = dict(setup["kubeconfig"])
    kubeconfig["clusters"] = [{"name": setup["kubeconfig"]["clusters"][0]["name"], "cluster": other["clusters"][0]["cluster"]}]
    with pytest.raises(UnauthorizedError) as err:
        _client(kubeconfig).resources.get(api_version="v1", kind="Namespace").get()
    assert err.value.status == 401


def _verify_rows(bed, setup) -> dict:
    run = run_playbook(REPO / "playbooks" / "verify.yml", inventory=setup["inventory"], extra_vars=setup["extra"], env=bed.env())
    summary = run.results("Show the verification summary")
    assert summary, failure_text(run)
    rows = {}
    for line in summary[0]["msg"]:
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 3:
            rows[(cells[0], cells[1])] = cells[2]
    return rows


def test_verify_checks_the_deployer_access_and_catches_a_widened_role(bed, setup):
    check = ("sc1", f"deployer access ({NS})")
    assert _verify_rows(bed, setup)[check].startswith("PASS  InferenceServices in models only (8 access reviews)")

    # An operator widens the deployer's Role by hand: verify names the permission too many.
    from kubernetes import config, dynamic  # noqa: PLC0415

    admin = dynamic.DynamicClient(config.new_client_from_config(bed.kubeconfig("sc1")))
    roles = admin.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="Role")
    role = roles.get(name="model-deployer", namespace=NS).to_dict()
    roles.patch(name="model-deployer", namespace=NS, content_type="application/json-patch+json",
                body=[{"op": "add", "path": "/rules/-", "value": {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}}])
    result = _verify_rows(bed, setup)[check]
    assert result.startswith("FAIL") and "get secrets in models allowed" in result, result

    # The role converges it back (its server-side apply owns the rules).
    run = bed.run("object_storage_role.yml", setup["inventory"], extra_vars=setup["extra"])
    assert run.rc == 0, failure_text(run)
    assert roles.get(name="model-deployer", namespace=NS).to_dict()["rules"] == role["rules"]
    assert _verify_rows(bed, setup)[check].startswith("PASS")


def test_preflight_refuses_a_cluster_whose_kubeconfig_is_not_cluster_admin(bed, setup, tmp_path):
    """site.yml's preflight asks each API server (SelfSubjectAccessReview) before anything changes: the
    deployer's kubeconfig reaches sc1 and authenticates, but may not install cluster-wide objects."""
    path = tmp_path / "deployer.kubeconfig"
    path.write_text(yaml.safe_dump(setup["kubeconfig"]))
    inventory = bed.inventory(sc=("sc1",), name="preflight-inventory.yml", all_vars={"sysctl_tuning_method": "daemonset"},
                              hostvars={"sc1": {"kubeconfig": str(path), "context": setup["kubeconfig"]["current-context"]}})
    run = run_playbook(REPO / "playbooks" / "preflight.yml", inventory=inventory, extra_vars=setup["extra"], env=bed.env())
    assert run.rc != 0 and run.changed_total() == 0, failure_text(run)
    summaries = [r["msg"] for r in run.results("Stop with one summary when any cluster would fail") if r["msg"].startswith("Preflight")]
    assert summaries, failure_text(run)
    summary = summaries[0]
    assert f"[sc1] API server: kubeconfig {path} (context {setup['kubeconfig']['current-context']}) is not allowed every verb" in summary
    assert "cluster-admin kubeconfig" in summary and "[pc1] API server" not in summary, summary
    assert "--limit 'all:!sc1'" in summary, summary
