"""Role kserve on real SC control planes (kube-apiserver, controllers, kwok nodes) with the real helm.

The charts come from the bed's chart repository: our fixture charts ``cert-manager`` and
``kserve-resources`` (under the upstream names and pinned versions, strict values schemas) and
KServe's real ``kserve-crd`` chart. Asserted as real helm reports them: the three releases
deployed at the pinned versions with the values the role gives (cert-manager with its CRDs,
the deployment mode), the CRDs they installed Established, the controller Deployment
Available and its ``inferenceservice-config``; the role's defaults still name KServe's OCI
charts (the bed's inventory points the refs at its repository). The objects the role applies
itself are read back from the API server: the Triton ClusterServingRuntime (validated by the
real CRD's schema), the models namespace, the S3 Secret with KServe's annotations and the
ServiceAccount listing it. Reruns and check mode change nothing; teardown removes it all.
"""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from tests.helpers.bed import CHART_REPO
from tests.helpers.playbook import REPO
from tests.integration.platform_bed import PlatformBed, failure_text

S3 = {"kserve_s3_endpoint": "minio.storage.example.com:9000", "kserve_s3_access_key": "test-access",
      "kserve_s3_secret_key": "test-secret-value"}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("kserve"), clusters=("sc1", "sc2"))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def inventory(bed):
    return bed.inventory(pc=(), sc=("sc1",), hostvars={"sc1": dict(S3)})


@pytest.fixture(scope="module")
def first_run(bed, inventory):
    run = bed.run("kserve_role.yml", inventory)
    assert run.rc == 0, failure_text(run)
    return run


def test_check_mode_on_a_fresh_cluster(bed):
    inv = bed.inventory(pc=(), sc=("sc2",), hostvars={"sc2": dict(S3)}, name="inventory-fresh.yml")
    run = bed.run("kserve_role.yml", inv, check=True, diff=True)
    assert run.rc == 0, failure_text(run)
    assert run.changed_total() > 0  # it reports what it would install
    assert bed.get("sc2", "v1", "Namespace", "models") is None
    assert bed.releases("sc2") == []
    assert bed.get("sc2", "apiextensions.k8s.io/v1", "CustomResourceDefinition", "inferenceservices.serving.kserve.io") is None
    assert "test-secret-value" not in run.stdout


def _established(bed, cluster: str, name: str) -> bool:
    crd = bed.get(cluster, "apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    return crd is not None and any(c["type"] == "Established" and c["status"] == "True"
                                   for c in crd.get("status", {}).get("conditions", []))


def _deploy_config(bed, cluster: str = "sc1") -> dict:
    cm = bed.get(cluster, "v1", "ConfigMap", "inferenceservice-config", "kserve")
    assert cm is not None, "the kserve-resources chart's inferenceservice-config is missing"
    return json.loads(cm["data"]["deploy"])


def test_releases_deployed_at_the_pinned_versions(bed, first_run):
    cm = bed.release("sc1", "cert-manager", "cert-manager")
    assert (cm["chart"], cm["version"], cm["status"]) == ("cert-manager", "v1.19.1", "deployed")
    assert cm["values"]["crds"]["enabled"] is True
    for crd in ("certificates.cert-manager.io", "issuers.cert-manager.io", "clusterissuers.cert-manager.io"):
        assert _established(bed, "sc1", crd), crd  # installed because crds.enabled reached the chart
    crd = bed.release("sc1", "kserve", "kserve-crd")
    assert (crd["chart"], crd["version"], crd["status"]) == ("kserve-crd", "v0.20.0", "deployed")
    for name in ("inferenceservices.serving.kserve.io", "clusterservingruntimes.serving.kserve.io",
                 "servingruntimes.serving.kserve.io"):
        assert _established(bed, "sc1", name), name  # KServe's own CRDs, from its real chart
    res = bed.release("sc1", "kserve", "kserve")
    assert (res["chart"], res["version"], res["status"]) == ("kserve-resources", "v0.20.0", "deployed")
    assert res["values"]["kserve"]["controller"]["deploymentMode"] == "Standard"
    assert _deploy_config(bed) == {"defaultDeploymentMode": "Standard"}
    controller = bed.get("sc1", "apps/v1", "Deployment", "kserve-controller-manager", "kserve")
    assert controller is not None
    assert any(c["type"] == "Available" and c["status"] == "True" for c in controller["status"]["conditions"])  # helm --wait


def test_chart_refs(first_run):
    """The role pins KServe's OCI charts; the run installed from the refs the inventory gave (the bed's repository)."""
    defaults = yaml.safe_load((REPO / "roles" / "kserve" / "defaults" / "main.yml").read_text())
    assert defaults["kserve_crd_chart_ref"] == "oci://ghcr.io/kserve/charts/kserve-crd"
    assert defaults["kserve_resources_chart_ref"] == "oci://ghcr.io/kserve/charts/kserve-resources"
    assert defaults["kserve_version"] == "v0.20.0"
    used = {}
    for task in ("Install or upgrade the KServe CRDs", "Install or upgrade the KServe controller"):
        args = first_run.result(f"nga4m.platform.kserve : {task}", "sc1")["invocation"]["module_args"]
        used[args["release_name"]] = (args["chart_ref"], args["chart_version"])
    assert used == {"kserve-crd": (f"{CHART_REPO}/kserve-crd", "v0.20.0"),
                    "kserve": (f"{CHART_REPO}/kserve-resources", "v0.20.0")}


def test_objects_applied(bed, first_run):
    csr = bed.get("sc1", "serving.kserve.io/v1alpha1", "ClusterServingRuntime", "nga4m-tritonserver")
    assert csr is not None
    formats = {f["name"] for f in csr["spec"]["supportedModelFormats"]}
    assert formats == {"onnx", "triton"}
    assert "v2" in csr["spec"]["protocolVersions"]
    assert csr["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/tritonserver:25.10-py3"
    secret = bed.get("sc1", "v1", "Secret", "kserve-s3", "models")
    ann = secret["metadata"]["annotations"]
    assert ann["serving.kserve.io/s3-endpoint"] == "minio.storage.example.com:9000"
    assert ann["serving.kserve.io/s3-usehttps"] == "0"
    assert ann["serving.kserve.io/s3-verifyssl"] == "1"
    assert ann["serving.kserve.io/s3-region"] == "us-east-1"
    assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == "test-secret-value"
    sa = bed.get("sc1", "v1", "ServiceAccount", "kserve-models", "models")
    assert {"name": "kserve-s3"} in sa["secrets"]


def test_secret_never_logged(first_run):
    assert "test-secret-value" not in first_run.stdout
    assert "test-secret-value" not in first_run.stderr


def test_rerun_and_check_mode_change_nothing(bed, inventory, first_run):
    check = bed.run("kserve_role.yml", inventory, check=True, diff=True)
    assert check.rc == 0, failure_text(check)
    assert check.changed_total() == 0, failure_text(check)
    again = bed.run("kserve_role.yml", inventory)
    assert again.rc == 0, failure_text(again)
    assert again.changed_total() == 0, failure_text(again)


def test_knative_mode_reaches_the_values(bed, inventory, first_run):
    run = bed.run("kserve_role.yml", inventory, extra_vars={"kserve_deployment_mode": "Knative"})
    assert run.rc == 0, failure_text(run)
    release = bed.release("sc1", "kserve", "kserve")
    assert release["values"]["kserve"]["controller"]["deploymentMode"] == "Knative"
    assert release["revision"] == 2
    assert _deploy_config(bed) == {"defaultDeploymentMode": "Serverless"}  # what the chart makes of it for the controller


def test_teardown(bed, inventory, first_run):
    run = bed.run("platform_teardown.yml", inventory, extra_vars={"teardown_roles": ["kserve"]})
    assert run.rc == 0, failure_text(run)
    assert bed.get("sc1", "serving.kserve.io/v1alpha1", "ClusterServingRuntime", "nga4m-tritonserver") is None
    assert bed.get("sc1", "v1", "Secret", "kserve-s3", "models") is None
    with pytest.raises(KeyError):
        bed.release("sc1", "kserve", "kserve")
    assert bed.get("sc1", "apps/v1", "Deployment", "kserve-controller-manager", "kserve") is None
    with pytest.raises(KeyError):
        bed.release("sc1", "cert-manager", "cert-manager")
    # Data and CRDs stay unless asked for.
    assert bed.get("sc1", "v1", "Namespace", "models") is not None
    assert bed.release("sc1", "kserve", "kserve-crd")["status"] == "deployed"
    assert _established(bed, "sc1", "inferenceservices.serving.kserve.io")
