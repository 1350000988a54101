"""playbooks/deploy_model.yml on real clusters with KServe's real controller and a real S3 server.

Clusters pc1, sc1 and sc2 are real control planes of the session bed
(tests/integration/platform_bed.py: kube-apiserver with RBAC, kwok nodes and pods). The
kserve role is converged on sc1 and sc2 first, so KServe's REAL controller manager runs
against each (the bed runner starts it for the kserve-controller pod) and reconciles the
InferenceService into a predictor Deployment, Service and autoscaler; kwok makes the pods
Ready, the controller then reports the InferenceService Ready with its status.url. The
model repository is a real S3 server (MinIO) and the model a small real ONNX iris
classifier. The inventory is written in tmp with the shape of inventories/demo (hosts.yml,
group_vars/all.yml with the object storage and the bed's chart repository, host_vars per
cluster).
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.helpers import onnx_models
from tests.helpers.playbook import REPO, run_playbook
from tests.helpers.s3 import S3Server
from tests.helpers.bed import chart_vars
from tests.integration.platform_bed import PLAYBOOKS, PlatformBed, failure_text

PLAYBOOK = REPO / "playbooks" / "deploy_model.yml"
BUCKET = "nga4m"
PREFIX = "models/triton"
ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
# KServe's URL for iris in models with kserve_inference_entry none (the default): no Ingress, and the role's
# domain settings make status.url the predictor Service's in-cluster address.
URL = "http://iris-predictor.models.svc.cluster.local"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.client().make_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("deploy"), clusters=("pc1", "sc1", "sc2"))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def inventory(bed, s3, tmp_path_factory):
    """An inventory directory shaped like inventories/demo; the kserve role converged on its SCs."""
    root = tmp_path_factory.mktemp("inventory")
    (root / "group_vars").mkdir()
    (root / "host_vars").mkdir()
    hosts = {"all": {"children": {"pc": {"hosts": {"pc1": None}}, "sc": {"hosts": {"sc1": None, "sc2": None}}}}}
    (root / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    group_all = {
        "nga4m_namespace": "nga4m-system",
        "object_storage_endpoint": s3.url,
        "object_storage_bucket": BUCKET,
        "object_storage_region": s3.region,
        "object_storage_access_key": s3.access_key,
        "object_storage_secret_key": s3.secret_key,
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        **chart_vars(bed.bed),
    }
    (root / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_all, sort_keys=False))
    for group in ("pc", "sc"):
        (root / "group_vars" / f"{group}.yml").write_text(yaml.safe_dump({"ansible_connection": "local"}))
    for name in ("pc1", "sc1", "sc2"):
        host = {"cluster_name": name, "kubeconfig": bed.kubeconfig(name), "context": name, "sysctl_tuning_method": "daemonset"}
        (root / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(host, sort_keys=False))
    run = run_playbook(PLAYBOOKS / "kserve_role.yml", inventory=root / "hosts.yml", env=bed.env())
    assert run.rc == 0, failure_text(run)
    return root / "hosts.yml"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return onnx_models.iris_classifier(tmp_path_factory.mktemp("model") / "iris.onnx")


def _deploy(bed, inventory, extra, **kwargs):
    return run_playbook(PLAYBOOK, inventory=inventory, extra_vars=extra, env=bed.env(), **kwargs)


def _vars(model, **over):
    base = {"model_name": "iris", "model_version": 1, "model_file": str(model), "target_clusters": ["sc1"],
            "max_batch_size": 8, "instance_count": 2, "min_replicas": 1}
    base.update(over)
    return base


@pytest.fixture(scope="module")
def deployed(bed, inventory, model, s3):
    run = _deploy(bed, inventory, _vars(model))
    assert run.rc == 0, failure_text(run)
    return run


def test_publishes_and_deploys_on_the_target_only(bed, s3, deployed):
    assert s3.keys(BUCKET, PREFIX + "/iris/") == [f"{PREFIX}/iris/1/model.onnx", f"{PREFIX}/iris/config.pbtxt"]
    config = s3.client().get_object(BUCKET, f"{PREFIX}/iris/config.pbtxt").read().decode()
    assert "max_batch_size: 8" in config and "count: 2" in config
    isvc = bed.get("sc1", *ISVC, "iris", "models")
    assert isvc is not None
    assert isvc["metadata"]["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"
    predictor = isvc["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "kserve-models"
    assert predictor["minReplicas"] == 1
    assert predictor["annotations"]["nga4m.io/triton-model-version"] == "1"
    assert predictor["model"] == {"modelFormat": {"name": "triton"}, "runtime": "nga4m-tritonserver",
                                  "protocolVersion": "v2", "storageUri": f"s3://{BUCKET}/{PREFIX}"}
    managers = {m["manager"] for m in isvc["metadata"]["managedFields"]}
    assert "nga4m" in managers
    # KServe's controller reconciled it with our ClusterServingRuntime and reported it Ready at its URL.
    applied = deployed.result("Apply the InferenceService and wait until it is Ready", "sc1")
    assert applied["changed"] is True
    assert applied["result"]["status"]["url"] == URL
    assert isvc["status"]["url"] == URL and isvc["status"]["clusterServingRuntimeName"] == "nga4m-tritonserver"
    assert isvc["status"]["observedGeneration"] == isvc["metadata"]["generation"]
    show = deployed.result("Show where the model answers", "sc1")["msg"]
    assert f"{URL}/v2/models/iris/infer" in show and "port-forward service/iris-predictor 8080:80" in show
    # no entry point was asked for: the real controller created no Ingress
    assert bed.list("sc1", "networking.k8s.io/v1", "Ingress", "models") == []
    deployment = bed.get("sc1", "apps/v1", "Deployment", "iris-predictor", "models")
    template = deployment["spec"]["template"]
    assert template["spec"]["serviceAccountName"] == "kserve-models"
    assert template["metadata"]["annotations"]["internal.serving.kserve.io/storage-initializer-sourceuri"] == f"s3://{BUCKET}/{PREFIX}"
    assert template["metadata"]["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert deployment["status"]["availableReplicas"] == 1
    # KServe routes the predictor Service's port 80 to the runtime's first container port (8080 when it declares
    # none): it must be Triton's HTTP port, where /v2/models/<m>/infer answers, not its gRPC port 9000.
    service = bed.get("sc1", "v1", "Service", "iris-predictor", "models")
    assert {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}[80] in (8080, "8080"), service["spec"]["ports"]
    container = next(c for c in template["spec"]["containers"] if c["name"] == "kserve-container")
    assert all(p["containerPort"] != 9000 for p in container.get("ports", [])), container.get("ports")
    # It runs under the "restricted" Pod Security Standard: non-root, no privilege escalation, no capabilities.
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"] and context["seccompProfile"]["type"] == "RuntimeDefault"
    assert bed.get("sc1", "autoscaling/v2", "HorizontalPodAutoscaler", "iris-predictor", "models")["spec"]["minReplicas"] == 1
    # sc2 runs KServe too (the kind is served there), and has no InferenceService.
    assert bed.get("sc2", "apiextensions.k8s.io/v1", "CustomResourceDefinition", "inferenceservices.serving.kserve.io") is not None
    assert bed.list("sc2", *ISVC, namespace="models") == []
    assert deployed.results("Apply the InferenceService and wait until it is Ready", "sc2") == []
    assert s3.secret_key not in deployed.stdout


def test_second_run_changes_nothing(bed, inventory, model, deployed):
    again = _deploy(bed, inventory, _vars(model))
    assert again.rc == 0, failure_text(again)
    assert again.changed_total() == 0, failure_text(again)


def test_check_mode_on_a_new_version_writes_nothing(bed, inventory, model, s3, deployed):
    before_keys = s3.keys(BUCKET)
    before = bed.get("sc1", *ISVC, "iris", "models")
    run = _deploy(bed, inventory, _vars(model, model_version=2), check=True, diff=True)
    assert run.rc == 0, failure_text(run)
    assert run.result("Publish the model in Triton layout")["changed"] is True
    assert run.result("Apply the InferenceService and wait until it is Ready", "sc1")["changed"] is True
    assert s3.keys(BUCKET) == before_keys
    after = bed.get("sc1", *ISVC, "iris", "models")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["predictor"]["annotations"]["nga4m.io/triton-model-version"] == "1"


BAD = [
    pytest.param({"model_file": None}, "model_file", id="missing-model-file"),
    pytest.param({"target_clusters": ["sc1", "pc1", "sc9"]}, "pc1, sc9 are not in group sc", id="target-not-in-sc"),
    pytest.param({"model_version": "v2"}, "model_version", id="bad-version"),
    pytest.param({"state": "gone"}, "state", id="unknown-state"),
    pytest.param({"model_name": "Bad_Name"}, "DNS-1035", id="bad-name"),
]


@pytest.mark.parametrize(("override", "message"), BAD)
def test_bad_extra_vars_fail_before_anything_is_touched(bed, inventory, model, s3, deployed, override, message):
    extra = _vars(model, model_name="other", target_clusters=["sc2"])
    extra.update(override)
    extra = {k: v for k, v in extra.items() if v is not None}
    keys = s3.keys(BUCKET)
    run = _deploy(bed, inventory, extra)
    assert run.rc != 0, failure_text(run)
    text = json.dumps(run.data) + run.stdout + run.stderr
    assert message in text, failure_text(run)
    assert s3.keys(BUCKET) == keys
    assert bed.list("sc2", *ISVC, namespace="models") == []
    # Nothing ran after the validate play.
    assert run.results("Publish the model in Triton layout") == []


def test_state_absent_removes_the_service_and_the_version(bed, inventory, model, s3, deployed):
    run = _deploy(bed, inventory, {"model_name": "iris", "model_version": 1, "target_clusters": "sc1",
                                   "state": "absent", "delete_from_storage": True})
    assert run.rc == 0, failure_text(run)
    assert bed.get("sc1", *ISVC, "iris", "models") is None  # the controller released its finalizer
    assert s3.keys(BUCKET, PREFIX + "/iris/") == []
    # The garbage collector removes what the controller created for it.
    deadline = time.monotonic() + 60
    while bed.get("sc1", "apps/v1", "Deployment", "iris-predictor", "models") is not None:
        assert time.monotonic() < deadline, "the predictor Deployment outlived its InferenceService"
        time.sleep(0.5)
    again = _deploy(bed, inventory, {"model_name": "iris", "target_clusters": "sc1", "state": "absent"})
    assert again.rc == 0, failure_text(again)
    assert again.changed_total() == 0, failure_text(again)


def test_a_new_interface_is_refused_unless_the_older_versions_are_retired(bed, inventory, s3, tmp_path):
    """One config.pbtxt serves every version: a version with another input is refused, naming it, until retire_versions."""
    first = onnx_models.iris_classifier(tmp_path / "v1.onnx")
    second = onnx_models.iris_classifier(tmp_path / "v2.onnx", input_name="features")
    run = _deploy(bed, inventory, _vars(first, model_name="iris-next"))
    assert run.rc == 0, failure_text(run)
    refused = _deploy(bed, inventory, _vars(second, model_name="iris-next", model_version=2))
    assert refused.rc != 0
    assert any("features" in failure for failure in refused.failures()), refused.failures()
    assert s3.keys(BUCKET, PREFIX + "/iris-next/") == [f"{PREFIX}/iris-next/1/model.onnx", f"{PREFIX}/iris-next/config.pbtxt"]
    retired = _deploy(bed, inventory, _vars(second, model_name="iris-next", model_version=2, retire_versions=True))
    assert retired.rc == 0, failure_text(retired)
    assert s3.keys(BUCKET, PREFIX + "/iris-next/") == [f"{PREFIX}/iris-next/2/model.onnx", f"{PREFIX}/iris-next/config.pbtxt"]
    config = s3.client().get_object(BUCKET, f"{PREFIX}/iris-next/config.pbtxt").read().decode()
    assert 'name: "features"' in config


def test_spec_matches_the_playbook_defaults_and_the_awx_doc():
    """The spec's defaults are the ones the playbook applies; docs/awx.md documents every variable."""
    spec = yaml.safe_load((REPO / "playbooks" / "vars" / "deploy_model_spec.yml").read_text())["nga4m_deploy_model_spec"]
    text = (REPO / "playbooks" / "deploy_model.yml").read_text()
    for name, option in spec.items():
        if "default" in option:
            default = option["default"]
            shown = f"'{default}'" if isinstance(default, str) else str(default).lower() if isinstance(default, bool) else str(default)
            assert f"{name} | default({shown}" in text, name
    awx = (REPO / "docs" / "awx.md").read_text()
    assert [name for name in spec if f"`{name}`" not in awx] == []
