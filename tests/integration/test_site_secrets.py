"""No secret reaches the output of site.yml: a converge and a rotation of every secret, with ``-vvv --diff``.

On a fresh bed (real control planes pc, sc1, sc2, real helm, MinIO), ``site.yml -i
inventories/demo`` converges with awkward passwords (quotes, a colon, ``#``, a backslash,
non-ASCII; the rotated ones also a newline) for every password the roles take - Grafana's
admin, the SC Prometheus basic auth (enabled behind an ingress, as in inventories/prod),
MLflow's MySQL user and root, the Kubeflow Dex user - then rotates them all. The first run
is read through the JSON callback (every result, module arguments and diffs as data), the
rotation through the default callback, as a user reads it. Neither may hold any form of
any of the secrets, old or new: the value itself, JSON-, YAML- and repr-escaped, base64
(what a Secret's data holds), or base64 of ``user:password`` (a basic-auth header) - nor
the bed's S3 secret key or the deployer token the run minted.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
import yaml

from tests.helpers.bed import bed_env
from tests.helpers.playbook import REPO, run_playbook
from tests.integration.platform_bed import own_bed

SITE = REPO / "site.yml"
DEMO = REPO / "inventories" / "demo"
SECRETS = {  # variable -> its distinct part (so a leak names the secret)
    "kube_prometheus_stack_grafana_admin_password": "grafana",
    "kube_prometheus_stack_prometheus_basic_auth_password": "basic-auth",
    "mlflow_mysql_password": "mysql",
    "mlflow_mysql_root_password": "mysql-root",
    "kubeflow_dex_user_password": "dex",
}
ROUNDS = ("Fïrst'q: x#y \\z \"dq\" €-{}", "Sëcond'q: a#b \\\\w \"dq\"\nline2 ü-{}")
# mlflow_mysql_password goes into the tracking server's database URI: letters, digits and ._~- only (its preflight says so).
URI_SAFE_ROUNDS = ("First.q_~{}-7Hd2", "Second.q_~{}-9Kx4")


def value(var: str, secret_round: int) -> str:
    rounds = URI_SAFE_ROUNDS if var == "mlflow_mysql_password" else ROUNDS
    return rounds[secret_round].format(SECRETS[var])


# The SC Prometheus behind an ingress with basic auth, as inventories/prod has it.
SC_AUTH = {"kube_prometheus_stack_prometheus_service_type": "ClusterIP",
           "kube_prometheus_stack_prometheus_ingress_enabled": True,
           "kube_prometheus_stack_prometheus_ingress_host": "prometheus.{{ cluster_name }}.example.test",
           "kube_prometheus_stack_prometheus_basic_auth_enabled": True}


def forms(secret: str) -> set[str]:
    """The ways a value shows up in output: plain, escaped, encoded."""
    out = {secret, json.dumps(secret)[1:-1], json.dumps(json.dumps(secret))[1:-1], repr(secret)[1:-1],
           yaml.safe_dump(secret, width=10**6).removesuffix("\n...\n").strip().strip("'\""),
           json.dumps(secret, ensure_ascii=False)[1:-1]}
    raw = secret.encode()
    out |= {base64.b64encode(raw).decode(), base64.b64encode(b"federate:" + raw).decode()}
    out |= {line for line in secret.splitlines() if len(line) >= 8}  # each line of a multi-line one
    return {f for f in out if len(f) >= 8}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    yield from own_bed(tmp_path_factory.mktemp("bed"))


def _site(bed, secret_round: int, callback: str):
    extra = {**SC_AUTH, **{var: value(var, secret_round) for var in SECRETS}}
    env = {**bed_env(bed.dir), "ANSIBLE_STDOUT_CALLBACK": callback}
    return run_playbook(SITE, inventory=DEMO, env=env, extra_vars=extra, diff=True,
                        args=["--forks", "10", "-vvv", "-e", "helm_release_grace_seconds=10"], timeout=1500)


def _bed_secrets(bed) -> dict:
    """The S3 secret key of the bed and the deployer tokens the run stored in the bucket."""
    info = json.loads((bed.dir / "s3.json").read_text())
    found = {"s3 secret key": info["secret_key"]}
    from minio import Minio  # noqa: PLC0415

    client = Minio(info["endpoint"], access_key=info["access_key"], secret_key=info["secret_key"], secure=False,
                   region=info["region"])
    for obj in client.list_objects("nga4m", prefix="kubeconfigs/", recursive=True):
        config = yaml.safe_load(client.get_object("nga4m", obj.object_name).read())
        if not config:  # the prefix's own (empty) marker object
            continue
        for user in config["users"]:
            found[f"deployer token {obj.object_name}"] = user["user"]["token"]
    return found


def _leaks(text: str, secrets: dict) -> list[str]:
    return sorted(f"{name}: {form!r}" for name, secret in secrets.items() for form in forms(secret) if form in text)


def test_a_converge_and_a_rotation_of_every_secret_print_none_of_them(bed):
    first = _site(bed, 0, "ansible.posix.json")
    assert first.rc == 0, first.stdout[-6000:] + first.stderr[-3000:]
    rotated = _site(bed, 1, "default")
    assert rotated.rc == 0, rotated.stdout[-6000:] + rotated.stderr[-3000:]
    secrets = {f"{var} ({which})": value(var, i) for var in SECRETS for i, which in enumerate(("first", "rotated"))}
    secrets.update(_bed_secrets(bed))
    assert len(secrets) >= len(SECRETS) * 2 + 3, secrets.keys()  # the S3 key and both SCs' deployer tokens
    assert not _leaks(first.stdout + first.stderr, secrets), _leaks(first.stdout + first.stderr, secrets)
    assert not _leaks(rotated.stdout + rotated.stderr, secrets), _leaks(rotated.stdout + rotated.stderr, secrets)
    # the rotation changed what depends on the secrets on the PC and on both SCs, and -vvv printed it all
    recap = dict(re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", rotated.stdout, re.MULTILINE))
    assert all(int(recap[host]) > 0 for host in ("pc1", "sc1", "sc2")), recap
    assert "<localhost> EXEC" in rotated.stdout + rotated.stderr  # -vvv output, not a short failure


def test_the_scan_finds_each_form_it_looks_for():
    """The scanner itself: a value printed in any of these ways is found."""
    secret = value("kubeflow_dex_user_password", 1)
    shown = {"plain": f"x {secret} y", "json": json.dumps({"p": secret}), "yaml": yaml.safe_dump({"p": secret}),
             "base64": base64.b64encode(secret.encode()).decode(), "repr": repr({"p": secret}),
             "basic auth": "Authorization: Basic " + base64.b64encode(b"federate:" + secret.encode()).decode()}
    for how, text in shown.items():
        assert _leaks(text, {"dex": secret}), how
    assert not _leaks(json.dumps({"p": value("kubeflow_dex_user_password", 0)}), {"dex": secret})
