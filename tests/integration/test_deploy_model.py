"""playbooks/deploy_model.yml on the emulated bed with a real S3 server.

Clusters pc1, sc1 and sc2 are served by the Kubernetes API TEST DOUBLE
(tests/doubles/kubeapi_double.py, whose emulated KServe controller makes an
InferenceService Ready with a status.url); the model repository is a real S3
server (moto_server) and the model a small real ONNX iris classifier. The
inventory is written in tmp with the shape of inventories/demo (hosts.yml,
group_vars/all.yml with the object storage, host_vars per cluster).
"""

from __future__ import annotations

import json
import pytest
import yaml

from tests.helpers import onnx_models
from tests.helpers.playbook import REPO, run_playbook
from tests.helpers.s3 import S3Server
from tests.integration.platform_bed import FIXTURES, PlatformBed, failure_text

PLAYBOOK = REPO / "playbooks" / "deploy_model.yml"
BUCKET = "nga4m"
PREFIX = "models/triton"
ISVC = ("serving.kserve.io/v1beta1", "InferenceService")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.client().make_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("deploy"), clusters=("pc1", "sc1", "sc2"))
    try:
        crds = yaml.safe_load((FIXTURES / "kserve_crds.yml").read_text())["items"]
        for cluster in ("sc1", "sc2"):
            _create(bed, cluster, crds + [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "models"}},
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kserve-models", "namespace": "models"}},
            ])
        yield bed
    finally:
        bed.stop()


def _create(bed, cluster, docs):
    from kubernetes import dynamic  # noqa: PLC0415

    client = dynamic.DynamicClient(bed.api(cluster))
    for doc in docs:
        res = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        res.create(body=doc, namespace=doc["metadata"].get("namespace"))


@pytest.fixture(scope="module")
def inventory(bed, s3, tmp_path_factory):
    """An inventory directory shaped like inventories/demo."""
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
    }
    (root / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_all, sort_keys=False))
    for group in ("pc", "sc"):
        (root / "group_vars" / f"{group}.yml").write_text(yaml.safe_dump({"ansible_connection": "local"}))
    for name in ("pc1", "sc1", "sc2"):
        host = {"cluster_name": name, "kubeconfig": bed.kubeconfig(name), "context": name, "sysctl_tuning_method": "daemonset"}
        (root / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(host, sort_keys=False))
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
    assert bed.list("sc2", *ISVC, namespace="models") == []
    applied = deployed.result("Apply the InferenceService and wait until it is Ready", "sc1")
    assert applied["changed"] is True and applied["result"]["status"]["url"]
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
    assert bed.get("sc1", *ISVC, "iris", "models") is None
    assert s3.keys(BUCKET, PREFIX + "/iris/") == []
    again = _deploy(bed, inventory, {"model_name": "iris", "target_clusters": "sc1", "state": "absent"})
    assert again.rc == 0, failure_text(again)
    assert again.changed_total() == 0, failure_text(again)


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
