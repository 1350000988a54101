"""examples/iris/serve_triton.py: the tritonserver command line it builds (the server itself runs in the integration tests)."""

from __future__ import annotations

import argparse
import sys

from tests.helpers.playbook import REPO

sys.path.insert(0, str(REPO / "examples" / "iris"))
import serve_triton  # noqa: E402


def _args(**given):
    base = {"local_path": None, "endpoint": "127.0.0.1:9000", "secure": False, "bucket": "nga4m", "prefix": "models/triton",
            "address": "127.0.0.1", "http_port": 8000, "grpc_port": 8001, "metrics_port": 8002, "poll_secs": 5, "log_verbose": 0}
    return argparse.Namespace(**{**base, **given})


def test_repository_url_is_triton_s3_syntax_with_the_endpoint_scheme():
    assert serve_triton.repository_url(_args()) == "s3://http://127.0.0.1:9000/nga4m/models/triton"
    assert serve_triton.repository_url(_args(secure=True)) == "s3://https://127.0.0.1:9000/nga4m/models/triton"
    assert serve_triton.repository_url(_args(endpoint="https://s3.example.test/", prefix="/m/")) == "s3://https://s3.example.test/nga4m/m"
    assert serve_triton.repository_url(_args(prefix="")) == "s3://http://127.0.0.1:9000/nga4m"


def test_repository_url_of_a_directory(tmp_path):
    assert serve_triton.repository_url(_args(local_path=str(tmp_path))) == str(tmp_path / "models" / "triton")
    assert serve_triton.repository_url(_args(local_path=str(tmp_path), prefix="")) == str(tmp_path)


def test_command_polls_binds_and_uses_our_backend_directory(tmp_path):
    argv = serve_triton.command(_args(), "/opt/t", str(tmp_path / "backends"))
    assert argv[0] == "/opt/t/pytriton/tritonserver/bin/tritonserver"
    assert f"--backend-directory={tmp_path / 'backends'}" in argv
    assert {"--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1"} <= set(argv)
    assert {"--model-control-mode=poll", "--repository-poll-secs=5", "--allow-metrics=true"} <= set(argv)
    assert "--model-control-mode=poll" not in serve_triton.command(_args(poll_secs=0), "/opt/t", "b")
