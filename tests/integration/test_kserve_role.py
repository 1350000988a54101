"""Role kserve on an emulated SC (kube API double + helm double).

The helm double records the three releases (cert-manager with CRDs, kserve-crd and
kserve-resources from the OCI charts, pinned); the objects the role applies
itself are asserted in the emulated API: the Triton ClusterServingRuntime, the
models namespace, the S3 Secret with KServe's annotations and the ServiceAccount
listing it. Reruns and check mode change nothing; teardown removes it all.
"""

from __future__ import annotations

import base64

import pytest

from tests.integration.platform_bed import PlatformBed, failure_text

S3 = {"kserve_s3_endpoint": "minio.storage.example.com:9000", "kserve_s3_access_key": "test-access",
      "kserve_s3_secret_key": "test-secret-value"}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("kserve"), clusters=("pc1", "sc1", "sc2"))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def inventory(bed):
    return bed.inventory(sc=("sc1",), hostvars={"sc1": dict(S3)})


@pytest.fixture(scope="module")
def first_run(bed, inventory):
    run = bed.run("kserve_role.yml", inventory)
    assert run.rc == 0, failure_text(run)
    return run


def test_check_mode_on_a_fresh_cluster(bed):
    inv = bed.inventory(sc=("sc2",), hostvars={"sc2": dict(S3)}, name="inventory-fresh.yml")
    run = bed.run("kserve_role.yml", inv, check=True, diff=True)
    assert run.rc == 0, failure_text(run)
    assert bed.get("sc2", "v1", "Namespace", "models") is None
    assert "test-secret-value" not in run.stdout


def test_releases_recorded(bed, first_run):
    cm = bed.release("sc1", "cert-manager", "cert-manager")
    assert cm["version"] == "v1.19.1" and cm["values"]["crds"]["enabled"] is True
    crd = bed.release("sc1", "kserve", "kserve-crd")
    assert crd["chart_ref"] == "oci://ghcr.io/kserve/charts/kserve-crd" and crd["version"] == "v0.20.0"
    res = bed.release("sc1", "kserve", "kserve")
    assert res["chart_ref"] == "oci://ghcr.io/kserve/charts/kserve-resources" and res["version"] == "v0.20.0"
    assert res["values"]["kserve"]["controller"]["deploymentMode"] == "Standard"


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
    assert bed.release("sc1", "kserve", "kserve")["values"]["kserve"]["controller"]["deploymentMode"] == "Knative"


def test_teardown(bed, inventory, first_run):
    run = bed.run("platform_teardown.yml", inventory, extra_vars={"teardown_roles": ["kserve"]})
    assert run.rc == 0, failure_text(run)
    assert bed.get("sc1", "serving.kserve.io/v1alpha1", "ClusterServingRuntime", "nga4m-tritonserver") is None
    assert bed.get("sc1", "v1", "Secret", "kserve-s3", "models") is None
    with pytest.raises(KeyError):
        bed.release("sc1", "kserve", "kserve")
    # Data and CRDs stay unless asked for.
    assert bed.get("sc1", "v1", "Namespace", "models") is not None
    assert bed.release("sc1", "kserve", "kserve-crd")
