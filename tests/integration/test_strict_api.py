"""A misspelled field in an object we apply fails the converge on a real API server.

The roles apply their objects with server-side apply, which a real kube-apiserver types
against the kind's schema (built-in kinds, and CRDs with structural schemas): a field the
schema does not have fails the request ("field not declared in schema") instead of being
dropped. Writes that are not server-side applies get the API server's field-validation
warnings instead, which the test harness makes fatal (tests/helpers/playbook.py,
``StrictApiError``).

- a copy of the collection whose sysctl DaemonSet carries ``priviliged`` (sic) fails on the
  apply, naming the field, while the unchanged collection converges on the same cluster;
- a plain create with an unknown field gets the server's warning, and the harness fails it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.playbook import REPO, StrictApiError, run_playbook
from tests.integration.platform_bed import PlatformBed, failure_text

TEMPLATE = Path("roles") / "sysctl_tuning" / "templates" / "daemonset.yml.j2"

PLAYBOOK = """---
- name: The sysctl DaemonSet on one cluster
  hosts: pc
  connection: local
  gather_facts: false
  module_defaults:
    group/kubernetes.core.k8s:
      kubeconfig: "{{ kubeconfig }}"
      context: "{{ context }}"
  tasks:
    - name: Namespace
      kubernetes.core.k8s:
        definition: {apiVersion: v1, kind: Namespace, metadata: {name: nga4m-system}}
    - name: Kernel settings through the DaemonSet
      ansible.builtin.include_role:
        name: nga4m.platform.sysctl_tuning
      vars:
        sysctl_tuning_method: daemonset
        sysctl_tuning_wait_timeout: 60
"""

PLAIN_CREATE = """---
- name: A create (not a server-side apply) with an unknown field
  hosts: pc
  connection: local
  gather_facts: false
  tasks:
    - name: Create a ConfigMap whose data is misspelled
      kubernetes.core.k8s:
        kubeconfig: "{{ kubeconfig }}"
        context: "{{ context }}"
        apply: false
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata: {name: strict-probe, namespace: default}
          dataa: {key: value}
"""


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    bed = PlatformBed(tmp_path_factory.mktemp("strict"), clusters=("pc1",))
    yield bed
    bed.stop()


def _collection_copy(root: Path, replace: tuple[str, str]) -> Path:
    """A copy of the collection (what ansible loads) with one string of the DaemonSet template replaced."""
    dest = root / "ansible_collections" / "nga4m" / "platform"
    dest.mkdir(parents=True)
    for part in ("galaxy.yml", "meta", "plugins", "roles"):
        src = REPO / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / part)
    template = dest / TEMPLATE
    text = template.read_text()
    assert replace[0] in text
    template.write_text(text.replace(replace[0], replace[1]))
    return root


def test_a_misspelled_field_fails_the_apply_and_the_clean_role_converges(bed, tmp_path):
    playbook = tmp_path / "daemonset.yml"
    playbook.write_text(PLAYBOOK)
    inventory = bed.inventory(sc=())
    broken = _collection_copy(tmp_path / "broken", ("'privileged': true", "'priviliged': true"))
    run = run_playbook(playbook, inventory=inventory, env={**bed.env(), "ANSIBLE_COLLECTIONS_PATH": str(broken)})
    assert run.rc != 0, failure_text(run)
    failed = run.result("nga4m.platform.sysctl_tuning : Apply the sysctl DaemonSet", "pc1")
    assert failed["failed"] is True
    assert "priviliged: field not declared in schema" in failed["msg"], failed["msg"]
    assert bed.get("pc1", "apps/v1", "DaemonSet", "nga4m-sysctl-tuning", "nga4m-system") is None

    clean = run_playbook(playbook, inventory=inventory, env=bed.env())
    assert clean.rc == 0, failure_text(clean)
    ds = bed.get("pc1", "apps/v1", "DaemonSet", "nga4m-sysctl-tuning", "nga4m-system")
    assert ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] is True
    assert ds["status"]["numberReady"] == 2  # both kwok nodes run it (pods simulated)


def test_an_unknown_field_in_a_plain_write_is_made_fatal(bed, tmp_path):
    playbook = tmp_path / "create.yml"
    playbook.write_text(PLAIN_CREATE)
    inventory = bed.inventory(sc=(), name="inventory-create.yml")
    with pytest.raises(StrictApiError) as err:
        run_playbook(playbook, inventory=inventory, env=bed.env())
    assert 'unknown field "dataa"' in str(err.value), err.value
    assert "Create a ConfigMap whose data is misspelled" in str(err.value)
