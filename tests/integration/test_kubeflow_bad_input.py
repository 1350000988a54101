"""Bad inputs to the nga4m.platform.kubeflow role fail before any object is applied, with a clear message.

Table-driven: each case overrides role variables, runs the role against a real cluster
that stays fresh (its own kube-apiserver, controllers and kwok nodes) and asserts that the
run failed in argument validation or preflight with the expected message, that no apply
task ran and that the cluster holds exactly the objects it held before.
"""

from __future__ import annotations

import pytest

from tests.integration.platform_bed import PLAYBOOKS, PlatformBed
from tests.integration.test_kubeflow_role import PLAYBOOK, snapshot

SECRET = "s3cr3t-never-printed"

CASES = [
    ("branch_instead_of_release", {"kubeflow_manifests_version": "master"}, "must pin a release"),
    ("empty_components", {"kubeflow_components": []}, "must be a non-empty list of kustomization directories"),
    ("component_escapes_root", {"kubeflow_components": ["../../etc"]}, "'..' are refused"),
    ("component_missing", {"kubeflow_components": ["example", "apps/no-such-thing"]}, "missing:"),
    ("download_unknown_version_without_checksum", {"kubeflow_kustomize_source": "download", "kubeflow_kustomize_version": "5.6.0"},
     "kubeflow_kustomize_checksum is required when kubeflow_kustomize_source is download and kustomize 5.6.0 is not one the role knows"),
    ("download_checksum_malformed", {"kubeflow_kustomize_source": "download", "kubeflow_kustomize_checksum": "md5:abc"},
     "kubeflow_kustomize_checksum must be sha256:<64 hex digits>"),
    ("kustomize_version_with_v", {"kubeflow_kustomize_version": "v5.7.1"}, "must look like 5.7.1"),
    ("binary_without_path", {"kubeflow_kustomize_source": "binary"}, "kubeflow_kustomize_binary must name a kustomize"),
    ("unknown_kustomize_source", {"kubeflow_kustomize_source": "helm"}, "kubeflow_kustomize_source must be one of"),
    ("profile_namespace_not_dns1123", {"kubeflow_profile_namespaces": ["Team_A"]}, "must be DNS-1123 labels"),
    ("retries_zero", {"kubeflow_apply_retries": 0}, "Retries and waits must be bounded"),
    ("retries_unbounded", {"kubeflow_apply_retries": 1000}, "Retries and waits must be bounded"),
    ("registry_entry_incomplete",
     {"kubeflow_registry_credentials": [{"registry": "registry.example.com", "username": "bot", "password": ""}]},
     "needs a non-empty registry, username and password"),
    ("registry_entry_missing_key",
     {"kubeflow_registry_credentials": [{"registry": "registry.example.com", "password": SECRET}]},
     "missing required arguments: username"),
    ("dashboard_link_not_a_path", {"kubeflow_dashboard_link": {"link": "mlflow/", "text": "MLflow"}},
     "must be a path starting with '/'"),
    ("kustomize_variables_unsubstituted", {"kubeflow_components": ["example", "common/unsubstituted"]},
     "holds 1 object(s) named with unsubstituted kustomize variables, e.g. Profile $(profile-name)"),
    # the Dex static user: never the manifests' default password
    ("dex_email_invalid", {"kubeflow_dex_user_email": "admin"}, "kubeflow_dex_user_email must be an email address"),
    ("dex_password_too_short", {"kubeflow_dex_user_password": "short"}, "must be 12 to 72 bytes long"),
    ("dex_password_too_long", {"kubeflow_dex_user_password": SECRET * 4}, "must be 12 to 72 bytes long"),
    ("dex_password_untraceable", {"kubeflow_components": ["example", "common/dex-untraceable"]},
     "Dex reads DEX_USER_PASSWORD from Secret auth/dex-passwords key DEX_USER_PASSWORD, which the build does not hold"),
    # plain wrong types, refused by the argument spec
    ("retries_not_int", {"kubeflow_apply_retries": "two"},
     "argument 'kubeflow_apply_retries' is of type str and we were unable to convert to int"),
    ("poddefault_enabled_not_bool", {"kubeflow_poddefault_enabled": "maybe"},
     "argument 'kubeflow_poddefault_enabled' is of type str and we were unable to convert to bool"),
    ("dashboard_link_not_dict", {"kubeflow_dashboard_link": ["/mlflow/", "MLflow"]},
     "argument 'kubeflow_dashboard_link' is of type list and we were unable to convert to dict"),
    ("components_not_list", {"kubeflow_components": {"example": True}},
     "argument 'kubeflow_components' is of type dict and we were unable to convert to list"),
    ("wait_extra_workloads_not_dicts", {"kubeflow_wait_extra_workloads": "ml-pipeline"},
     "Elements value for option 'kubeflow_wait_extra_workloads' is of type str and we were unable to convert to dict"),
    ("wait_extra_workload_kind", {"kubeflow_wait_extra_workloads": [{"kind": "DaemonSet", "namespace": "kubeflow", "name": "x"}]},
     "value of kind must be one of: Deployment, StatefulSet"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("kubeflow-bad-input"), clusters=("pc",))
    yield bed
    bed.stop()


@pytest.fixture(scope="module")
def seed(cluster):
    """What the fresh cluster holds (the objects the check-mode snapshot covers)."""
    return snapshot(cluster)


@pytest.mark.parametrize("overrides, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_before_anything_is_applied(cluster, seed, overrides, needle):
    run = cluster.run(PLAYBOOK, "localhost,", extra_vars={"kubeconfig": cluster.kubeconfig("pc"), **overrides})
    assert run.rc != 0, f"expected a failure for {overrides}\n{run.stdout[-3000:]}"
    output = run.stdout + run.stderr
    assert needle in output, output[-4000:]
    assert SECRET not in output
    assert snapshot(cluster) == seed
    applied = [t for p in run.data.get("plays", []) for t in p.get("tasks", [])
               if "first pass" in t.get("task", {}).get("name", "")]
    assert applied == [], "no apply task may run on bad input"


def test_cases_table_is_large_enough():
    assert len(CASES) >= 7
    assert len({c[0] for c in CASES}) == len(CASES)
    assert (PLAYBOOKS / PLAYBOOK).exists()
