"""Unit tests for module_utils/s3_object.py on a LocalStore (same interface as S3Store)."""

from __future__ import annotations

import pytest

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import LocalStore
from ansible_collections.nga4m.platform.plugins.module_utils.s3_object import ensure_object, read_object


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "root")


def test_put_is_idempotent_by_checksum(store):
    first = ensure_object(store, "datasets/.keep", content="", create_bucket=True)
    assert first["changed"] and first["exists"]
    again = ensure_object(store, "datasets/.keep", content="", create_bucket=True)
    assert not again["changed"]


def test_check_mode_writes_nothing(store):
    result = ensure_object(store, "a/b.txt", content="x", check_mode=True, create_bucket=True)
    assert result["changed"] and not store.exists("a/b.txt")


def test_diff_hides_sensitive_content(store):
    ensure_object(store, "kubeconfigs/sc1", content="token: old\n", create_bucket=True)
    result = ensure_object(store, "kubeconfigs/sc1", content="token: new\n", sensitive=True)
    assert result["changed"]
    assert "new" not in result["diff"]["after"] and "old" not in result["diff"]["before"]
    plain = ensure_object(store, "kubeconfigs/sc1", content="token: newer\n")
    assert plain["diff"] == {"before": "token: new\n", "after": "token: newer\n"}


def test_src_upload_and_get_and_absent(store, tmp_path):
    src = tmp_path / "iris.csv"
    src.write_text("a,b\n1,2\n")
    assert ensure_object(store, "datasets/iris.csv", src=str(src), create_bucket=True)["changed"]
    got = read_object(store, "datasets/iris.csv")
    assert got["content"] == "a,b\n1,2\n" and not got["changed"]
    assert ensure_object(store, "datasets/iris.csv", state="absent")["changed"]
    assert not ensure_object(store, "datasets/iris.csv", state="absent")["changed"]
    assert read_object(store, "datasets/iris.csv")["content"] is None


@pytest.mark.parametrize("kwargs,message", [
    ({"key": "", "content": "x"}, "key must name an object"),
    ({"key": "a/../b", "content": "x"}, "must not contain"),
    ({"key": "a", "content": "x", "src": "/etc/hostname"}, "exactly one of content"),
    ({"key": "a"}, "exactly one of content"),
    ({"key": "a", "src": "/nonexistent/file"}, "does not exist"),
])
def test_bad_input(store, kwargs, message):
    with pytest.raises(NGA4MError, match=message):
        ensure_object(store, create_bucket=True, **kwargs)
