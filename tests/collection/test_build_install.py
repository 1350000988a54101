"""The collection builds, installs from its tarball offline, and its modules resolve by FQCN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import onnx_models
from tests.helpers.playbook import REPO

BIN = Path(sys.executable).parent
MODULES = ("nga4m.platform.prometheus_federation", "nga4m.platform.triton_model_repository")


def _run(argv, env=None, cwd=None):
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)  # noqa: S603
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_build_and_install_tarball(tmp_path):
    # A clean environment: the suite's ANSIBLE_COLLECTIONS_PATH already holds nga4m.platform
    # (linked to the work tree), and ansible-galaxy would skip installing over it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    out = tmp_path / "dist"
    _run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)], env=env)
    tarballs = list(out.glob("nga4m-platform-*.tar.gz"))
    assert len(tarballs) == 1

    listing = _run(["tar", "tzf", str(tarballs[0])]).stdout.splitlines()
    assert "plugins/modules/prometheus_federation.py" in listing
    assert "plugins/modules/triton_model_repository.py" in listing
    assert not [p for p in listing if p.startswith(("tests/", "molecule/", ".venv/", ".cache/"))], "build_ignore leaks"

    dest = tmp_path / "collections"
    _run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "-p", str(dest), str(tarballs[0])], env=env)
    assert (dest / "ansible_collections" / "nga4m" / "platform" / "MANIFEST.json").exists()

    env["ANSIBLE_COLLECTIONS_PATH"] = str(dest)
    for fqcn in MODULES:
        doc = _run([str(BIN / "ansible-doc"), fqcn], env=env, cwd=str(tmp_path)).stdout
        assert fqcn in doc
        assert "check_mode" in doc

    playbook = tmp_path / "use.yml"
    playbook.write_text(
        "---\n- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Render federation from the installed collection\n"
        "      nga4m.platform.prometheus_federation:\n"
        "        clusters:\n          - name: sc1\n            url: http://127.0.0.1:9090\n            namespaces: [models]\n"
        "      register: fed\n"
        "    - name: Check\n      ansible.builtin.assert:\n        that: fed.scrape_configs | length == 1\n"
    )
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    _run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)], env=env, cwd=str(tmp_path))

    _publish_from_installed_collection(tmp_path, env)


def _publish_from_installed_collection(tmp_path, env):
    """triton_model_repository by FQCN from the tarball: publish a tiny ONNX model to a local directory, twice."""
    model = onnx_models.iris_classifier(tmp_path / "iris.onnx")
    repo = tmp_path / "model-repository"  # does not exist yet: the module creates it
    results = tmp_path / "publish-results.json"
    publish = {
        "nga4m.platform.triton_model_repository": {
            "name": "iris",
            "version": 1,
            "model_file": str(model),
            "local_path": str(repo),
            "max_batch_size": 8,
        }
    }
    play = [
        {
            "name": "Publish with the installed collection",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "Publish the model", **publish, "register": "first"},
                {"name": "Publish the same model again", **publish, "register": "second"},
                {
                    "name": "Record both results",
                    "ansible.builtin.copy": {
                        "content": "{{ {'first': first, 'second': second} | to_json }}",
                        "dest": str(results),
                        "mode": "0644",
                    },
                },
            ],
        }
    ]
    playbook = tmp_path / "publish.yml"
    playbook.write_text("---\n" + yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
    _run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)], env=env, cwd=str(tmp_path))

    runs = json.loads(results.read_text(encoding="utf-8"))
    first, second = runs["first"], runs["second"]
    assert first["changed"] is True, first
    assert first["uploaded"] == ["iris/1/model.onnx", "iris/config.pbtxt"], first
    assert (repo / "iris" / "1" / "model.onnx").read_bytes() == model.read_bytes()
    config = (repo / "iris" / "config.pbtxt").read_text(encoding="utf-8")
    assert config == first["config"] and 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 8" in config
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == ["iris/1/model.onnx", "iris/config.pbtxt"]
    assert second["changed"] is False and second["uploaded"] == [] and second["plan"] == [], second
