"""Tests of the helm TEST DOUBLE (tests/doubles/helm_double/helm).

The double stands in for the helm binary in emulated runs; these tests check
its CLI (as kubernetes.core calls it) and run kubernetes.core.helm,
helm_repository and helm_info against it through ansible-playbook.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.doubles.helm_double import recorded
from tests.helpers.playbook import REPO, run_playbook

DOUBLE_DIR = REPO / "tests" / "doubles" / "helm_double"
HELM = DOUBLE_DIR / "helm"
HELM_CLI = DOUBLE_DIR / "helm_cli.py"  # the implementation the ``helm`` launcher runs
VENV_BIN = str(Path(sys.executable).parent)
SERVER_A = "http://127.0.0.1:1"
SERVER_B = "https://10.255.0.2:6443"
KEY_A = "http_127.0.0.1_1"


def _load_cli():
    loader = importlib.machinery.SourceFileLoader("helm_double_cli", str(HELM_CLI))
    spec = importlib.util.spec_from_loader("helm_double_cli", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


cli = _load_cli()


def write_kubeconfig(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "a", "cluster": {"server": SERVER_A}},
                    {"name": "b", "cluster": {"server": SERVER_B}},
                ],
                "contexts": [
                    {"name": "ctx-a", "context": {"cluster": "a", "user": "u"}},
                    {"name": "ctx-b", "context": {"cluster": "b", "user": "u", "namespace": "team-b"}},
                ],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "current-context": "ctx-a",
            }
        )
    )
    return path


@pytest.fixture()
def env(tmp_path):
    state = tmp_path / "state"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig.yaml")
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
    e.update(
        {
            "PATH": os.pathsep.join([str(DOUBLE_DIR), VENV_BIN, os.environ.get("PATH", "")]),
            "HELM_DOUBLE_STATE_DIR": str(state),
            "KUBECONFIG": str(kubeconfig),
        }
    )
    return e


@pytest.fixture()
def helm(env, tmp_path):
    def run(*argv, check=True, extra_env=None, input=None):
        proc = subprocess.run(  # noqa: S603 - test double, argv from the test
            ["helm", *argv],
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            cwd=str(tmp_path),
            input=input,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {argv} failed rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    run.state = Path(env["HELM_DOUBLE_STATE_DIR"])
    return run


# --------------------------------------------------------------------------- basics


def test_only_helm_is_executable_on_the_path_dir():
    executables = sorted(p.name for p in DOUBLE_DIR.iterdir() if p.is_file() and os.access(p, os.X_OK))
    assert executables == ["helm"]


def test_refuses_to_run_without_state_dir(env):
    env = {k: v for k, v in env.items() if k != "HELM_DOUBLE_STATE_DIR"}
    proc = subprocess.run(["helm", "list"], env=env, capture_output=True, text=True, check=False)  # noqa: S607
    assert proc.returncode != 0
    assert "TEST DOUBLE" in proc.stderr and "HELM_DOUBLE_STATE_DIR" in proc.stderr


def test_double_info_says_it_is_a_double(helm):
    out = helm("double-info").stdout
    assert "test double" in out and "NOT helm" in out


def test_version_parses_like_kubernetes_core(helm):
    out = helm("version").stdout
    m = re.match(r'version.BuildInfo{Version:"v(.*?)",', out)
    assert m and m.group(1).startswith("3.")
    assert helm("version", "--short").stdout.startswith("v3.")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["frobnicate"], 'unknown command "frobnicate"'),
        (["upgrade", "--bogus", "x", "y"], "unknown flag: --bogus"),
        (["list", "-Z"], "unknown shorthand flag: 'Z'"),
        (["template", "x", "y"], "'helm template' is not implemented"),
        (["pull", "repo/x"], "'helm pull' is not implemented"),
        (["diff", "upgrade", "x", "y"], 'unknown command "diff"'),
        (["get", "values"], "requires 1 argument"),
        (["upgrade", "--reuse-values=maybe", "x", "y"], 'invalid argument "maybe"'),
    ],
)
def test_gaps_are_loud(helm, argv, needle):
    proc = helm(*argv, check=False)
    assert proc.returncode == 1
    assert needle in proc.stderr


def test_no_cluster_selected_fails(helm, tmp_path):
    proc = helm("list", check=False, extra_env={"KUBECONFIG": str(tmp_path / "missing")})
    assert proc.returncode == 1 and "Kubernetes cluster unreachable" in proc.stderr


# --------------------------------------------------------------------------- repositories


def test_repo_lifecycle(helm):
    proc = helm("repo", "list", "--output=yaml", check=False)
    assert proc.returncode == 1 and "no repositories to show" in proc.stderr
    assert "no repositories found" in helm("repo", "update", check=False).stderr
    assert "has been added" in helm("repo", "add", "demo", "https://charts.example.invalid").stdout
    assert "skipping" in helm("repo", "add", "demo", "https://charts.example.invalid").stdout
    clash = helm("repo", "add", "demo", "https://other.example.invalid", check=False)
    assert clash.returncode == 1 and "already exists" in clash.stderr
    helm("repo", "add", "demo", "https://other.example.invalid", "--force-update",
         "--username=u", "--password=s3cret")
    assert yaml.safe_load(helm("repo", "list", "--output=yaml").stdout) == [
        {"name": "demo", "url": "https://other.example.invalid"}
    ]
    assert "Successfully got an update" in helm("repo", "update").stdout
    assert recorded.repositories(helm.state)[0]["password_set"] is True
    log = (helm.state / "invocations.jsonl").read_text()
    assert "s3cret" not in log and "--password=******" in log
    assert "has been removed" in helm("repo", "rm", "demo").stdout
    assert 'no repo named "demo"' in helm("repo", "remove", "demo", check=False).stderr


# --------------------------------------------------------------------------- charts


def test_show_chart_references(helm, tmp_path):
    assert helm("show", "chart", "demo/web", check=False).stderr.strip() == "Error: repo demo not found"
    assert "repo_name/path_to_chart" in helm("show", "chart", "web", check=False).stderr
    helm("repo", "add", "demo", "https://charts.example.invalid")
    meta = yaml.safe_load(helm("--version=1.2.3", "show", "chart", "demo/web").stdout)
    assert (meta["name"], meta["version"]) == ("web", "1.2.3")
    assert "appVersion" not in meta
    assert yaml.safe_load(helm("show", "chart", "demo/web").stdout)["version"] == "0.0.0-double"
    oci = yaml.safe_load(helm("show", "chart", "oci://reg.example/charts/kserve", "--version", "0.15.0").stdout)
    assert (oci["name"], oci["version"]) == ("kserve", "0.15.0")
    viarepo = yaml.safe_load(helm("show", "chart", "mlflow", "--repo", "https://x.invalid", "--version=2").stdout)
    assert (viarepo["name"], viarepo["version"]) == ("mlflow", "2")
    chart = tmp_path / "mychart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: mychart\nversion: 0.3.0\nappVersion: 1.16\n")
    (chart / "values.yaml").write_text("replicas: 1\n")
    local = yaml.safe_load(helm("show", "chart", str(chart), "--version=9.9.9").stdout)
    assert (local["name"], local["version"], local["appVersion"]) == ("mychart", "0.3.0", "1.16")
    assert helm("show", "values", str(chart)).stdout == "replicas: 1\n"
    tgz = tmp_path / "mychart-0.3.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(chart, arcname="mychart")
    assert yaml.safe_load(helm("show", "chart", str(tgz)).stdout)["name"] == "mychart"
    assert 'path "./nope" not found' in helm("show", "chart", "./nope", check=False).stderr
    assert "NOT downloaded" in helm("dependency", "update", str(chart)).stdout


# --------------------------------------------------------------------------- --set parsing


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("a=b", "typed", {"a": "b"}),
        ("a=1,b=true,c=FALSE,d=null,e=0,f=007,g=1.5,h=-3", "typed",
         {"a": 1, "b": True, "c": False, "d": None, "e": 0, "f": "007", "g": "1.5", "h": -3}),
        ("a.b.c=x", "typed", {"a": {"b": {"c": "x"}}}),
        (r"nodeSelector.kubernetes\.io/os=linux", "typed", {"nodeSelector": {"kubernetes.io/os": "linux"}}),
        ("a[0].b=1,a[1].b=2", "typed", {"a": [{"b": 1}, {"b": 2}]}),
        ("a[2]=z", "typed", {"a": [None, None, "z"]}),
        ("a[0][1]=x", "typed", {"a": [[None, "x"]]}),
        ("list={a,b,3}", "typed", {"list": ["a", "b", 3]}),
        (r"msg=hello\,world", "typed", {"msg": "hello,world"}),
        ("a=", "typed", {"a": ""}),
        ("a=1,b=true", "string", {"a": "1", "b": "true"}),
        ('a={"x":[1,2]},b="s"', "json", {"a": {"x": [1, 2]}, "b": "s"}),
        ("a=", "json", {"a": None}),
        ("a=x,y=z", "literal", {"a": "x,y=z"}),
        ("url=http://h:1/p?q=1", "typed", {"url": "http://h:1/p?q=1"}),
    ],
)
def test_set_parsing(text, mode, expected):
    assert cli.parse_set(text, mode) == expected


def test_set_parsing_merges_into_existing():
    base = {"a": {"keep": 1, "b": 0}, "l": [{"x": 1}]}
    assert cli.parse_set("a.b=2,l[0].y=2", "typed", base) == {"a": {"keep": 1, "b": 2}, "l": [{"x": 1, "y": 2}]}


@pytest.mark.parametrize(
    ("text", "message"),
    [("a", 'key "a" has no value'), ("a,b=1", "cannot end with ,"), ("a[-1]=x", "negative -1 index"),
     ("a={x,y", "list must terminate with '}'")],
)
def test_set_parsing_errors(text, message):
    with pytest.raises(cli.HelmError, match=re.escape(message)):
        cli.parse_set(text, "typed")


# --------------------------------------------------------------------------- releases


def _install(helm, *extra, name="web", chart="demo/web", version="1.0.0", ns="apps", extra_env=None, check=True):
    return helm("upgrade", "-i", "--reset-values", *extra, f"--version={version}", "-n", ns, name, chart,
                extra_env=extra_env, check=check)


def test_upgrade_install_records_merged_values(helm, tmp_path):
    helm("repo", "add", "demo", "https://charts.example.invalid")
    (tmp_path / "v1.yaml").write_text("a: 1\nb: {c: 2, d: 3}\nwhen: 2024-01-01\n")
    (tmp_path / "v2.yaml").write_text("b: {c: 20}\n")
    (tmp_path / "secret.txt").write_text("file-content\n")
    out = _install(helm, "--wait", "--timeout", "5m0s", "--atomic", "--create-namespace", "-f=v1.yaml",
                   "--values", "v2.yaml", "--set", "b.e=x,list[0]=1", "--set-string", "s=007",
                   "--set-json", 'j={"k":[true]}', "--set-file", "f=secret.txt", "--description", "first",
                   "--skip-crds", "--force", "--disable-openapi-validation", "--wait-for-jobs").stdout
    assert "Installing it now" in out
    rel = recorded.release(helm.state, KEY_A, "apps", "web")
    assert rel["values"] == {"a": 1, "b": {"c": 20, "d": 3, "e": "x"}, "when": "2024-01-01", "list": [1],
                             "s": "007", "j": {"k": [True]}, "f": "file-content\n"}
    assert (rel["chart"], rel["version"], rel["chart_ref"], rel["revision"], rel["status"]) == (
        "web", "1.0.0", "demo/web", 1, "deployed")
    assert rel["repo_url"] == "https://charts.example.invalid"
    assert rel["description"] == "first" and rel["flags"]["atomic"] is True
    assert yaml.safe_load((helm.state / KEY_A / "apps" / "web" / "values.yaml").read_text()) == rel["values"]
    got = yaml.safe_load(helm("get", "values", "--output=yaml", "web", "-n", "apps").stdout)
    assert got == rel["values"]
    assert json.loads(helm("get", "values", "web", "-n", "apps", "-o", "json", "-a").stdout) == rel["values"]
    assert helm("get", "values", "web", "-n", "apps").stdout.startswith("USER-SUPPLIED VALUES:")
    listed = yaml.safe_load(helm("list", "--output=yaml", "--filter", "web", "-n", "apps").stdout)
    assert listed == [{"name": "web", "namespace": "apps", "revision": "1", "updated": listed[0]["updated"],
                       "status": "deployed", "chart": "web-1.0.0", "app_version": ""}]
    assert yaml.safe_load(helm("list", "--output=yaml").stdout) == []  # namespace default
    assert [r["name"] for r in json.loads(helm("list", "-A", "-o", "json").stdout)] == ["web"]
    status = json.loads(helm("status", "web", "-n", "apps", "-o", "json").stdout)
    assert status["info"]["status"] == "deployed" and status["config"] == rel["values"]
    assert helm("get", "manifest", "web", "-n", "apps").stdout == ""
    assert "release: not found" in helm("get", "values", "nope", "-n", "apps", check=False).stderr


def test_reset_reuse_and_history(helm):
    helm("repo", "add", "demo", "https://charts.example.invalid")
    _install(helm, "--set", "a=1,b=2")
    helm("upgrade", "web", "demo/web", "-n", "apps", "--version=1.0.0")  # no values, no flags: keeps values
    assert recorded.release(helm.state, KEY_A, "apps", "web")["values"] == {"a": 1, "b": 2}
    helm("upgrade", "web", "demo/web", "-n", "apps", "--reuse-values", "--set", "b=3,c=4")
    assert recorded.release(helm.state, KEY_A, "apps", "web")["values"] == {"a": 1, "b": 3, "c": 4}
    helm("upgrade", "web", "demo/web", "-n", "apps", "--reuse-values=false", "--reset-values", "--set", "z=1")
    rel = recorded.release(helm.state, KEY_A, "apps", "web")
    assert rel["values"] == {"z": 1} and rel["revision"] == 4 and rel["version"] == "0.0.0-double"
    assert [h["status"] for h in rel["history"]] == ["superseded"] * 3 + ["deployed"]
    assert [h["revision"] for h in yaml.safe_load(helm("history", "web", "-n", "apps", "-o", "yaml").stdout)] == [
        1, 2, 3, 4]
    assert yaml.safe_load(helm("get", "values", "web", "-n", "apps", "--revision", "1", "-o", "yaml").stdout) == {
        "a": 1, "b": 2}
    helm("rollback", "web", "1", "-n", "apps")
    rel = recorded.release(helm.state, KEY_A, "apps", "web")
    assert (rel["revision"], rel["values"]) == (5, {"a": 1, "b": 2})
    helm("upgrade", "web", "demo/web", "-n", "apps", "--history-max=2", "--set", "q=1")
    assert [h["revision"] for h in recorded.release(helm.state, KEY_A, "apps", "web")["history"]] == [5, 6]


def test_wait_model_keeps_a_new_revision_pending(helm):
    """HELM_DOUBLE_WAIT_SECONDS: a --wait install/upgrade is pending that long (at most --timeout), then deployed."""
    helm("repo", "add", "demo", "https://charts.example.invalid")
    model = {"HELM_DOUBLE_WAIT_SECONDS": "1.5"}
    seen = []

    def watch():
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            rel = recorded.release(helm.state, KEY_A, "apps", "web") if recorded.releases(helm.state) else None
            if rel:
                seen.append(rel["status"])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    _install(helm, "--wait", extra_env=model)
    took = time.monotonic() - started
    watcher.join()
    assert took >= 1.5 and "pending-install" in seen
    assert recorded.release(helm.state, KEY_A, "apps", "web")["status"] == "deployed"

    started = time.monotonic()
    _install(helm, "--wait", "--timeout", "200ms", "--set", "a=1", extra_env=model)  # capped by --timeout
    assert time.monotonic() - started < 1.2
    started = time.monotonic()
    _install(helm, "--set", "a=2", extra_env=model)  # no --wait: nothing to wait for
    assert time.monotonic() - started < 1.2
    assert "must be a number" in _install(helm, "--wait", extra_env={"HELM_DOUBLE_WAIT_SECONDS": "soon"},
                                          check=False).stderr


def test_wait_model_does_not_serialise_clusters(helm, env, tmp_path):
    """Two clusters' --wait upgrades overlap: the state lock is not held while a wait is pending."""
    helm("repo", "add", "demo", "https://charts.example.invalid")
    started = time.monotonic()
    procs = [subprocess.Popen(  # noqa: S603 - test double, fixed argv
        ["helm", "upgrade", "-i", "--wait", "--kube-context", ctx, "-n", "apps", "web", "demo/web"],
        env={**env, "HELM_DOUBLE_WAIT_SECONDS": "2"}, cwd=str(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for ctx in ("ctx-a", "ctx-b")]
    for proc in procs:
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    assert time.monotonic() - started < 3.5
    assert sorted(r["status"] for r in recorded.releases(helm.state)) == ["deployed", "deployed"]


def test_install_upgrade_errors_and_dry_run(helm):
    helm("repo", "add", "demo", "https://charts.example.invalid")
    proc = helm("upgrade", "web", "demo/web", "-n", "apps", check=False)
    assert '"web" has no deployed releases' in proc.stderr
    out = _install(helm, "--dry-run", "--set", "a=1").stdout
    assert "dry run" in out and recorded.releases(helm.state) == []
    _install(helm, "--dry-run=server")
    assert recorded.releases(helm.state) == []
    helm("install", "web", "demo/web", "-n", "apps")
    assert "cannot re-use a name" in helm("install", "web", "demo/web", "-n", "apps", check=False).stderr


def test_uninstall(helm):
    helm("repo", "add", "demo", "https://charts.example.invalid")
    _install(helm, "--set", "a=1")
    assert helm("uninstall", "web", "-n", "apps", "--wait", "--timeout", "1m").stdout == 'release "web" uninstalled\n'
    assert recorded.releases(helm.state) == []
    assert not (helm.state / KEY_A).exists()
    proc = helm("uninstall", "web", "-n", "apps", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: uninstall: Release not loaded: web: release: not found"
    _install(helm, "--set", "a=1")
    helm("uninstall", "web", "-n", "apps", "--keep-history")
    assert yaml.safe_load(helm("list", "-o", "yaml", "-n", "apps").stdout) == []
    listed = yaml.safe_load(helm("list", "-o", "yaml", "-n", "apps", "--all").stdout)
    assert listed[0]["status"] == "uninstalled"
    _install(helm, "--set", "a=2")
    rel = recorded.release(helm.state, KEY_A, "apps", "web")
    assert (rel["revision"], rel["status"], rel["values"]) == (2, "deployed", {"a": 2})


def test_per_cluster_and_namespace_separation(helm, env, tmp_path):
    helm("repo", "add", "demo", "https://charts.example.invalid")
    _install(helm, "--set", "who=a")
    _install(helm, "--kube-context", "ctx-b", "--set", "who=b")
    helm("upgrade", "-i", "web", "demo/web", "--set", "who=b-default-ns", extra_env={"HELM_KUBECONTEXT": "ctx-b"})
    helm("upgrade", "-i", "web", "demo/web", "--set", "who=direct", "--kube-apiserver", "http://10.9.9.9:8080",
         "-n", "apps")
    key_b = recorded.cluster_key(SERVER_B)
    assert key_b == recorded.cluster_key_for_kubeconfig(env["KUBECONFIG"], "ctx-b")
    assert KEY_A == recorded.cluster_key_for_kubeconfig(env["KUBECONFIG"])
    assert recorded.release(helm.state, KEY_A, "apps", "web")["values"] == {"who": "a"}
    assert recorded.release(helm.state, key_b, "apps", "web")["values"] == {"who": "b"}
    assert recorded.release(helm.state, key_b, "team-b", "web")["values"] == {"who": "b-default-ns"}
    assert recorded.release(helm.state, "http_10.9.9.9_8080", "apps", "web")["values"] == {"who": "direct"}
    assert len(recorded.releases(helm.state)) == 4
    assert yaml.safe_load(helm("list", "-A", "-o", "yaml").stdout)[0]["namespace"] == "apps"
    assert len(yaml.safe_load(helm("list", "-A", "-o", "yaml", "--kube-context=ctx-b").stdout)) == 2
    missing = helm("list", "--kube-context", "nope", check=False)
    assert 'context "nope" does not exist' in missing.stderr
    with pytest.raises(KeyError, match="recorded"):
        recorded.release(helm.state, KEY_A, "apps", "other")


def test_plugin_list_and_emulated_diff(helm):
    assert helm("plugin", "list").stdout == "NAME\tVERSION\tDESCRIPTION\n"
    on = {"HELM_DOUBLE_DIFF_PLUGIN": "1"}
    assert helm("plugin", "list", extra_env=on).stdout.splitlines()[1].startswith("diff\t3.")
    helm("repo", "add", "demo", "https://charts.example.invalid")
    _install(helm, "--set", "a=1")
    same = helm("diff", "upgrade", "web", "demo/web", "--version=1.0.0", "--reset-values=True", "--set", "a=1",
                "-n", "apps", extra_env=on)
    assert same.stdout == ""
    changed = helm("diff", "upgrade", "web", "demo/web", "--version=1.0.1", "--reset-values=True", "--set", "a=2",
                   "-n", "apps", extra_env=on).stdout
    assert "-  a: 1" in changed and "+  a: 2" in changed and "web-1.0.1" in changed
    assert recorded.release(helm.state, KEY_A, "apps", "web")["values"] == {"a": 1}


def test_invocation_log(helm):
    helm("version")
    helm("list", "--kube-token", "tok3n", check=False)
    log = recorded.invocations(helm.state)
    assert [e["argv"][0] for e in log] == ["version", "list"]
    assert log[1]["argv"] == ["list", "--kube-token", "******"] and log[0]["rc"] == 0


# --------------------------------------------------------------------------- kubernetes.core via ansible-playbook

PLAYBOOK_INSTALL = """
- name: Drive kubernetes.core helm modules against the helm test double
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Add repo
      kubernetes.core.helm_repository:
        name: demo
        repo_url: https://charts.example.invalid/demo
    - name: Add repo again
      kubernetes.core.helm_repository:
        name: demo
        repo_url: https://charts.example.invalid/demo
    - name: Install web
      kubernetes.core.helm:
        name: web
        chart_ref: demo/webapp
        chart_version: 1.4.2
        release_namespace: apps
        create_namespace: true
        wait: true
        kubeconfig: "{{ kubeconfig_path }}"
        values: "{{ web_values }}"
    - name: Install web again
      kubernetes.core.helm:
        name: web
        chart_ref: demo/webapp
        chart_version: 1.4.2
        release_namespace: apps
        create_namespace: true
        wait: true
        kubeconfig: "{{ kubeconfig_path }}"
        values: "{{ web_values }}"
    - name: Change web in check mode
      check_mode: true
      kubernetes.core.helm:
        name: web
        chart_ref: demo/webapp
        chart_version: 1.4.2
        release_namespace: apps
        create_namespace: true
        wait: true
        kubeconfig: "{{ kubeconfig_path }}"
        values: "{{ web_values | combine({'replicas': 9}) }}"
    - name: Info web
      kubernetes.core.helm_info:
        name: web
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
    - name: Install api with values and values_files
      kubernetes.core.helm:
        name: api
        chart_ref: oci://registry.example.invalid/charts/api
        chart_version: 0.9.0
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
        values_files: ["{{ values_file }}"]
        values: {image: {tag: v2}}
    - name: Install api again
      kubernetes.core.helm:
        name: api
        chart_ref: oci://registry.example.invalid/charts/api
        chart_version: 0.9.0
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
        values_files: ["{{ values_file }}"]
        values: {image: {tag: v2}}
"""

PLAYBOOK_CHANGE_AND_REMOVE = """
- name: Change and remove releases through the helm test double
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Change web
      kubernetes.core.helm:
        name: web
        chart_ref: demo/webapp
        chart_version: 1.4.2
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
        values: "{{ web_values | combine({'replicas': 3}) }}"
    - name: Info web after change
      kubernetes.core.helm_info:
        name: web
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
    - name: Remove web
      kubernetes.core.helm:
        name: web
        state: absent
        release_namespace: apps
        wait: true
        kubeconfig: "{{ kubeconfig_path }}"
    - name: Remove web again
      kubernetes.core.helm:
        name: web
        state: absent
        release_namespace: apps
        wait: true
        kubeconfig: "{{ kubeconfig_path }}"
    - name: Info web after removal
      kubernetes.core.helm_info:
        name: web
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
"""


def _playbook_env(env, **extra):
    return {"PATH": env["PATH"], "HELM_DOUBLE_STATE_DIR": env["HELM_DOUBLE_STATE_DIR"], "KUBECONFIG": "",
            "K8S_AUTH_KUBECONFIG": "", **extra}


def _ok(run, name, changed):
    res = run.result(name)
    assert not res.get("failed"), json.dumps(res, indent=1)
    assert res.get("changed") is changed, f"{name}: {json.dumps(res, indent=1)}"
    return res


def test_kubernetes_core_helm_modules(env, tmp_path):
    state = Path(env["HELM_DOUBLE_STATE_DIR"])
    values_file = tmp_path / "api-values.yaml"
    values_file.write_text("image: {repository: example/api, tag: v1}\nreplicas: 2\n")
    web_values = {"replicas": 1, "image": {"tag": "1.0"}, "ingress": {"enabled": True, "hosts": ["a.example"]},
                  "note": "007"}
    xvars = {"kubeconfig_path": str(tmp_path / "kubeconfig.yaml"), "web_values": web_values,
             "values_file": str(values_file)}
    playbook = tmp_path / "install.yml"
    playbook.write_text(PLAYBOOK_INSTALL)

    run = run_playbook(playbook, extra_vars=xvars, env=_playbook_env(env))
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    _ok(run, "Add repo", True)
    _ok(run, "Add repo again", False)
    _ok(run, "Install web", True)
    _ok(run, "Install web again", False)
    _ok(run, "Change web in check mode", True)
    info = _ok(run, "Info web", False)["status"]
    assert info["values"] == web_values and info["chart"] == "webapp-1.4.2" and info["status"] == "deployed"
    _ok(run, "Install api with values and values_files", True)
    # kubernetes.core's default idempotency check (no helm-diff plugin) compares the release's values
    # with the values_files alone when values_files is given, so values + values_files always reports
    # a change -- real helm behaves the same; see the diff-plugin test below for the idempotent path.
    _ok(run, "Install api again", True)

    web = recorded.release(state, KEY_A, "apps", "web")
    assert (web["chart"], web["version"], web["chart_ref"], web["revision"]) == ("webapp", "1.4.2", "demo/webapp", 1)
    assert web["values"] == web_values  # check mode recorded nothing
    assert web["flags"]["create-namespace"] is True and web["flags"]["wait"] is True
    api = recorded.release(state, KEY_A, "apps", "api")
    assert api["values"] == {"image": {"repository": "example/api", "tag": "v2"}, "replicas": 2}
    assert api["chart_ref"] == "oci://registry.example.invalid/charts/api" and api["version"] == "0.9.0"
    assert recorded.repositories(state) == [{"name": "demo", "url": "https://charts.example.invalid/demo"}]

    playbook2 = tmp_path / "change.yml"
    playbook2.write_text(PLAYBOOK_CHANGE_AND_REMOVE)
    run2 = run_playbook(playbook2, extra_vars=xvars, env=_playbook_env(env))
    assert run2.rc == 0, run2.stdout[-3000:] + run2.stderr[-3000:]
    changed = _ok(run2, "Change web", True)
    assert changed["status"]["values"] == {**web_values, "replicas": 3}
    assert _ok(run2, "Info web after change", False)["status"]["revision"] == "2"
    _ok(run2, "Remove web", True)
    _ok(run2, "Remove web again", False)
    assert "status" not in _ok(run2, "Info web after removal", False)
    assert [r["name"] for r in recorded.releases(state)] == ["api"]
    # the only failing helm call is helm_repository's probe of an empty repository list
    failed = [(e["argv"], e["error"]) for e in recorded.invocations(state) if e["rc"] != 0]
    assert failed == [(["repo", "list", "--output=yaml"], "Error: no repositories to show")]


PLAYBOOK_DIFF = """
- name: kubernetes.core.helm with the emulated helm-diff plugin
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Install api
      kubernetes.core.helm:
        name: api
        chart_ref: demo/api
        chart_version: 0.9.0
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
        values_files: ["{{ values_file }}"]
        set_values:
          - value: extra.flag=true
          - value: extra.name=007
            value_type: string
        values: {image: {tag: v2}}
    - name: Install api again
      kubernetes.core.helm:
        name: api
        chart_ref: demo/api
        chart_version: 0.9.0
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
        values_files: ["{{ values_file }}"]
        set_values:
          - value: extra.flag=true
          - value: extra.name=007
            value_type: string
        values: {image: {tag: v2}}
    - name: Change api in check mode
      check_mode: true
      kubernetes.core.helm:
        name: api
        chart_ref: demo/api
        chart_version: 0.9.0
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
        values_files: ["{{ values_file }}"]
        set_values:
          - value: extra.flag=true
          - value: extra.name=007
            value_type: string
        values: {image: {tag: v3}}
    - name: Change api
      kubernetes.core.helm:
        name: api
        chart_ref: demo/api
        chart_version: 0.9.0
        release_namespace: apps
        kubeconfig: "{{ kubeconfig_path }}"
        values_files: ["{{ values_file }}"]
        set_values:
          - value: extra.flag=true
          - value: extra.name=007
            value_type: string
        values: {image: {tag: v3}}
"""


def test_kubernetes_core_helm_with_diff_plugin(env, tmp_path):
    state = Path(env["HELM_DOUBLE_STATE_DIR"])
    subprocess.run(["helm", "repo", "add", "demo", "https://charts.example.invalid"],  # noqa: S607
                   env=env, check=True, capture_output=True)
    values_file = tmp_path / "api-values.yaml"
    values_file.write_text("image: {repository: example/api, tag: v1}\nreplicas: 2\n")
    playbook = tmp_path / "diff.yml"
    playbook.write_text(PLAYBOOK_DIFF)
    xvars = {"kubeconfig_path": str(tmp_path / "kubeconfig.yaml"), "values_file": str(values_file)}
    run = run_playbook(playbook, extra_vars=xvars, env=_playbook_env(env, HELM_DOUBLE_DIFF_PLUGIN="1"))
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-3000:]
    _ok(run, "Install api", True)
    _ok(run, "Install api again", False)
    _ok(run, "Change api in check mode", True)
    _ok(run, "Change api", True)
    api = recorded.release(state, KEY_A, "apps", "api")
    assert api["values"] == {"image": {"repository": "example/api", "tag": "v3"}, "replicas": 2,
                             "extra": {"flag": True, "name": "007"}}
    assert api["revision"] == 2
    assert any(e["argv"][:2] == ["diff", "upgrade"] for e in recorded.invocations(state))


def test_recorded_module_is_importable_without_tests_package():
    # recorded.py is plain stdlib + PyYAML so tests elsewhere (molecule verify) can load it by path
    proc = subprocess.run([sys.executable, "-c", "import recorded; print(recorded.cluster_key('https://h:6443/'))"],
                          cwd=str(DOUBLE_DIR), capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "https_h_6443"


def test_readme_names_it_a_test_double():
    text = (DOUBLE_DIR / "README.md").read_text()
    assert "test double" in text.lower() and "HELM_DOUBLE_STATE_DIR" in text
