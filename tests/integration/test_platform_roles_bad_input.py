"""Bad input to the platform roles fails in preflight with a message naming the variable and the fix.

Table-driven across kube_prometheus_stack, kserve, model_monitoring and
object_storage, on real control planes (kwok nodes) with the real helm and the bed's
chart repository: every case must fail before anything is applied (no Helm release
that real helm lists, no namespace created on the API servers).
"""

from __future__ import annotations

import pytest

from tests.integration.platform_bed import PlatformBed, failure_text

S3 = {"kserve_s3_endpoint": "minio.example.com:9000", "kserve_s3_access_key": "a", "kserve_s3_secret_key": "b"}
OS = {"object_storage_endpoint": "127.0.0.1:9", "object_storage_access_key": "a", "object_storage_secret_key": "b"}

CASES = [
    # id, role, hosts, extra vars, expected fragments of the failure message
    ("kps-profile", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_profile": "tertiary"},
     ["kube_prometheus_stack_profile", "primary, secondary"]),
    ("kps-chart-latest", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_chart_version": "latest"},
     ["kube_prometheus_stack_chart_version must be a pinned version"]),
    ("kps-cluster-name", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_cluster_name": "SC_1"},
     ["kube_prometheus_stack_cluster_name must be a lower-case DNS label"]),
    ("kps-cluster-name-64", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_cluster_name": "c" * 64},
     ["kube_prometheus_stack_cluster_name must be a lower-case DNS label"]),
    ("kps-node-port", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_prometheus_node_port": 80},
     ["30000-32767"]),
    ("kps-basic-auth-no-ingress", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_prometheus_basic_auth_enabled": True},
     ["basic auth", "kube_prometheus_stack_prometheus_ingress_enabled: true"]),
    ("kps-primary-no-sc-url", "kube_prometheus_stack", "pc1", {"kube_prometheus_stack_profile": "primary"},
     ["without a URL: sc1", "kube_prometheus_stack_federation_url"]),
    ("kps-primary-empty-group", "kube_prometheus_stack", "pc1",
     {"kube_prometheus_stack_profile": "primary", "kube_prometheus_stack_federation_group": "nope"},
     ["nothing valid to federate", "Found 0 secondary cluster(s)"]),
    ("kserve-no-endpoint", "kserve", "sc1", {}, ["kserve_s3_endpoint must be host:port"]),
    ("kserve-endpoint-scheme", "kserve", "sc1", dict(S3, kserve_s3_endpoint="http://minio.example.com:9000"),
     ["without scheme or path", "http://minio.example.com:9000"]),
    ("kserve-mode", "kserve", "sc1", dict(S3, kserve_deployment_mode="Serverless"), ["kserve_deployment_mode", "Standard, Knative"]),
    ("kserve-version", "kserve", "sc1", dict(S3, kserve_version="latest"), ["must be pinned versions", "got latest"]),
    ("kserve-triton-latest", "kserve", "sc1", dict(S3, kserve_triton_image_tag="latest"), ["kserve_triton_image_tag must be a pinned tag"]),
    # the inference entry point: an explicit choice, with what it needs named, and present on the cluster
    ("kserve-entry-choice", "kserve", "sc1", dict(S3, kserve_inference_entry="loadbalancer"),
     ["kserve_inference_entry", "none, ingress, gateway-api"]),
    ("kserve-ingress-no-class", "kserve", "sc1", dict(S3, kserve_inference_entry="ingress", kserve_ingress_domain="sc1.example.test"),
     ["kserve_inference_entry ingress needs kserve_ingress_class_name", 'got ""']),
    ("kserve-ingress-no-domain", "kserve", "sc1", dict(S3, kserve_inference_entry="ingress", kserve_ingress_class_name="nginx"),
     ["kserve_ingress_domain (the DNS domain of the model hosts", 'got ""']),
    ("kserve-gateway-not-namespaced", "kserve", "sc1",
     dict(S3, kserve_inference_entry="gateway-api", kserve_ingress_gateway="kserve-gateway", kserve_ingress_domain="sc1.example.test"),
     ["kserve_ingress_gateway (namespace/name of a Gateway", '"kserve-gateway"']),
    ("kserve-ingress-class-missing", "kserve", "sc1",
     dict(S3, kserve_inference_entry="ingress", kserve_ingress_class_name="nginx", kserve_ingress_domain="sc1.example.test"),
     ["IngressClass nginx (kserve_ingress_class_name) does not exist on this cluster"]),
    ("kserve-gateway-api-missing", "kserve", "sc1",
     dict(S3, kserve_inference_entry="gateway-api", kserve_ingress_gateway="gateways/kserve", kserve_ingress_domain="sc1.example.test"),
     ["the cluster does not serve the Gateway API"]),
    ("mm-port", "model_monitoring", "sc1", {"model_monitoring_port": 70000}, ["model_monitoring_port must be 1-65535"]),
    ("mm-selector", "model_monitoring", "sc1", {"model_monitoring_pod_selector": {}}, ["model_monitoring_pod_selector must not be empty"]),
    ("mm-interval", "model_monitoring", "sc1", {"model_monitoring_interval": "often"}, ["must be Prometheus durations", "often"]),
    ("os-no-credentials", "object_storage", "sc1", {"object_storage_endpoint": "127.0.0.1:9"},
     ["object_storage_access_key", "never invents S3 credentials"]),
    ("os-bucket", "object_storage", "sc1", dict(OS, object_storage_bucket="My_Bucket"), ["valid object_storage_bucket", "My_Bucket"]),
    ("os-prefix", "object_storage", "sc1", dict(OS, object_storage_triton_prefix="/abs/../x"), ["must be distinct relative keys"]),
    ("os-files", "object_storage", "sc1", dict(OS, object_storage_files=[{"src": "/etc/hostname"}]), ["needs src", "and key"]),
    ("os-renewal", "object_storage", "sc1", dict(OS, object_storage_deployer_token_renew_before=9000000),
     ["must exceed object_storage_deployer_token_renew_before"]),
    # plain wrong types, refused by the argument spec before the role's own preflight
    ("kps-node-port-type", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_prometheus_node_port": "two"},
     ["'kube_prometheus_stack_prometheus_node_port' is of type str", "unable to convert to int"]),
    ("kps-ingress-bool", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_prometheus_ingress_enabled": "maybe"},
     ["'kube_prometheus_stack_prometheus_ingress_enabled' is of type str", "'maybe' is not a valid boolean"]),
    ("kps-federation-options-list", "kube_prometheus_stack", "sc1", {"kube_prometheus_stack_federation_options": ["honor_labels"]},
     ["'kube_prometheus_stack_federation_options' is of type list", "unable to convert to dict"]),
    ("kps-federation-clusters-string", "kube_prometheus_stack", "pc1",
     {"kube_prometheus_stack_profile": "primary", "kube_prometheus_stack_federation_clusters": "sc1"},
     ["Elements value for option 'kube_prometheus_stack_federation_clusters' is of type str", "unable to convert to dict"]),
    ("kserve-crd-wait-type", "kserve", "sc1", dict(S3, kserve_crd_wait_timeout="two"),
     ["'kserve_crd_wait_timeout' is of type str", "unable to convert to int"]),
    ("kserve-https-bool", "kserve", "sc1", dict(S3, kserve_s3_use_https="maybe"),
     ["'kserve_s3_use_https' is of type str", "'maybe' is not a valid boolean"]),
    ("kserve-overrides-list", "kserve", "sc1", dict(S3, kserve_values_overrides=["controller"]),
     ["'kserve_values_overrides' is of type list", "unable to convert to dict"]),
    ("mm-port-type", "model_monitoring", "sc1", {"model_monitoring_port": "two"},
     ["'model_monitoring_port' is of type str", "unable to convert to int"]),
    ("mm-selector-list", "model_monitoring", "sc1", {"model_monitoring_pod_selector": ["app=iris"]},
     ["'model_monitoring_pod_selector' is of type list", "unable to convert to dict"]),
    ("os-files-string", "object_storage", "sc1", dict(OS, object_storage_files="examples/iris/data/iris.csv"),
     ["Elements value for option 'object_storage_files' is of type str", "unable to convert to dict"]),
    ("os-secure-bool", "object_storage", "sc1", dict(OS, object_storage_secure="maybe"),
     ["'object_storage_secure' is of type str", "'maybe' is not a valid boolean"]),
    ("os-expiration-type", "object_storage", "sc1", dict(OS, object_storage_deployer_token_expiration="two"),
     ["'object_storage_deployer_token_expiration' is of type str", "unable to convert to int"]),
    ("os-deployer-clusters-dict", "object_storage", "sc1", dict(OS, object_storage_deployer_clusters={"name": "sc1"}),
     ["'object_storage_deployer_clusters' is of type dict", "unable to convert to list"]),
]


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("bad"), clusters=("pc1", "sc1"))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def inventory(bed):
    return bed.inventory(sc=("sc1",))


def _failure_messages(run) -> list[str]:
    out = []
    for play in run.data.get("plays", []):
        for task in play.get("tasks", []):
            for res in task.get("hosts", {}).values():
                if res.get("failed"):
                    out.append((task["task"]["name"], str(res.get("msg", ""))))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_in_preflight(bed, inventory, case):
    _id, role, hosts, extra, fragments = case
    run = bed.run("platform_bad_input.yml", inventory, extra_vars=dict(extra, role_under_test=role, target_hosts=hosts))
    assert run.rc != 0, failure_text(run)
    failures = _failure_messages(run)
    assert len(failures) == 1, failures or failure_text(run)
    task, msg = failures[0]
    assert "Check" in task or "Validating arguments" in task, (task, msg)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert run.stats[hosts]["changed"] == 0


def test_nothing_was_applied(bed):
    for cluster in ("pc1", "sc1"):
        assert bed.releases(cluster) == []
        names = {ns["metadata"]["name"] for ns in bed.list(cluster, "v1", "Namespace")}
        assert not names & {"monitoring", "models", "kserve", "cert-manager"}, names
