"""The bed's charts: ours lint cleanly, and every chart the bed serves matches the version a role pins.

The bed serves the fixture charts of tests/fixtures/charts under the upstream names, and
KServe's real kserve-crd chart from the Go module tools/gobuild pins; the roles install them by
the versions in their defaults. A version bump in a role without its chart here (or the other
way round) would make every bed run fail on "chart not found": caught here, in seconds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.bed import CHARTS, chart_dirs
from tests.helpers.kubebed import bin_dir, pins

REPO = Path(__file__).resolve().parents[2]


def _defaults(role: str) -> dict:
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())


def _chart(name: str) -> dict:
    found = [d for d in chart_dirs() if d.name == name]
    assert len(found) == 1, [str(d) for d in chart_dirs()]
    return yaml.safe_load((found[0] / "Chart.yaml").read_text())


@pytest.mark.parametrize("chart", sorted(p.name for p in CHARTS.iterdir() if (p / "Chart.yaml").exists()))
def test_fixture_chart_lints_strictly(chart):
    run = subprocess.run([str(bin_dir() / "helm"), "lint", "--strict", str(CHARTS / chart)],  # noqa: S603
                         capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_served_charts_match_the_pinned_versions():
    kps, kserve = _defaults("kube_prometheus_stack"), _defaults("kserve")
    assert _chart(kps["kube_prometheus_stack_chart_name"])["version"] == kps["kube_prometheus_stack_chart_version"]
    assert _chart("cert-manager")["version"] == kserve["kserve_cert_manager_chart_version"]
    assert _chart("kserve-resources")["version"] == kserve["kserve_version"]
    assert _chart("kserve-crd")["version"] == kserve["kserve_version"]
    # the KServe controller the bed runs is the release the role installs
    assert pins()["NGA4M_KSERVE_VERSION"] == kserve["kserve_version"]


def test_fixture_values_schemas_refuse_a_misspelled_path():
    run = subprocess.run(  # noqa: S603
        [str(bin_dir() / "helm"), "template", "t", str(CHARTS / "kube-prometheus-stack"), "--set", "prometheus.sevice.type=NodePort"],
        capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode != 0
    assert "additional properties 'sevice' not allowed" in run.stderr, run.stderr
