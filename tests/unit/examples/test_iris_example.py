"""The iris example's static parts: compiled pipeline, data set, notebooks, manifests (no services started).

The end-to-end run is tests/integration/test_iris_pipeline.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
IRIS = REPO / "examples" / "iris"


def _compile(tmp_path, *extra) -> str:
    out = tmp_path / "iris.yaml"
    run = subprocess.run([sys.executable, str(IRIS / "pipeline.py"), "--compile", str(out), *extra],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    return out.read_text()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("iris-compile")
    first = _compile(tmp, "--image-train", "reg.example/t:1", "--image-publish", "reg.example/p:1", "--credentials-secret", "s3-creds")
    second = _compile(tmp, "--image-train", "reg.example/t:1", "--image-publish", "reg.example/p:1", "--credentials-secret", "s3-creds")
    return first, second


def test_compile_is_deterministic(compiled):
    first, second = compiled
    assert first == second


def test_compiled_pipeline_spec(compiled):
    spec, platform = list(yaml.safe_load_all(compiled[0]))
    assert spec["pipelineInfo"]["name"] == "nga4m-iris"
    assert set(spec["root"]["dag"]["tasks"]) == {"load-data", "preprocess", "build-model", "train", "convert", "publish", "serve"}
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert "defaultValue" not in params["s3_endpoint"]  # required
    assert params["dataset_key"]["defaultValue"] == "datasets/iris/iris.csv"
    assert params["runtime"]["defaultValue"] == "nga4m-tritonserver"
    images = {name: ex["container"]["image"] for name, ex in spec["deploymentSpec"]["executors"].items()}
    assert images == {"exec-load-data": "reg.example/p:1", "exec-publish": "reg.example/p:1", "exec-serve": "reg.example/p:1",
                      "exec-preprocess": "reg.example/t:1", "exec-build-model": "reg.example/t:1", "exec-train": "reg.example/t:1",
                      "exec-convert": "reg.example/t:1"}
    for executor in spec["deploymentSpec"]["executors"].values():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command  # the images carry every dependency
    secrets = {name: [(s["secretName"], [(k["secretKey"], k["envVar"]) for k in s["keyToEnv"]]) for s in cfg["secretAsEnv"]]
               for name, cfg in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items()}
    expected = [("s3-creds", [("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")])]
    assert secrets == {"exec-load-data": expected, "exec-publish": expected, "exec-serve": expected}
    assert "AWS_SECRET_ACCESS_KEY=" not in compiled[0]


def test_iris_csv_is_generated_from_scikit_learn():
    run = subprocess.run([sys.executable, str(IRIS / "data" / "make_iris_csv.py"), "--check"], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = (IRIS / "data" / "iris.csv").read_text().splitlines()
    assert lines[0] == "sepal_length,sepal_width,petal_length,petal_width,species"
    assert len(lines) == 151
    assert {line.rsplit(",", 1)[1] for line in lines[1:]} == {"setosa", "versicolor", "virginica"}


@pytest.mark.parametrize("name", ["submit_pipeline.ipynb", "inference.ipynb"])
def test_notebooks_are_valid_and_clean(name):
    doc = json.loads((IRIS / "notebooks" / name).read_text())
    assert doc["nbformat"] == 4
    assert doc["cells"]
    for cell in doc["cells"]:
        assert cell["cell_type"] in ("markdown", "code")
        assert isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            compile("".join(line for line in cell["source"] if not line.lstrip().startswith("%")), name, "exec")


def test_submit_notebook_uses_in_cluster_client():
    text = "".join("".join(c["source"]) for c in json.loads((IRIS / "notebooks" / "submit_pipeline.ipynb").read_text())["cells"])
    assert "kfp.Client()" in text
    assert "access-ml-pipeline" in text
    assert "create_run_from_pipeline_package" in text


def test_manifest_templates_hold_placeholders_only():
    secret = yaml.safe_load((IRIS / "manifests" / "pipeline-credentials-secret.yaml").read_text())
    assert secret["metadata"]["name"] == "nga4m-pipeline-credentials"
    assert secret["stringData"] == {"AWS_ACCESS_KEY_ID": "${NGA4M_S3_ACCESS_KEY}", "AWS_SECRET_ACCESS_KEY": "${NGA4M_S3_SECRET_KEY}"}
    docs = yaml.safe_load((IRIS / "manifests" / "sc-serviceaccount.yaml").read_text())["items"]
    kinds = {d["kind"]: d for d in docs}
    assert kinds["ServiceAccount"]["metadata"]["name"] == "kserve-models"
    assert kinds["ServiceAccount"]["secrets"] == [{"name": "kserve-s3"}]
    assert kinds["Secret"]["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"] == "${NGA4M_S3_ENDPOINT}"
