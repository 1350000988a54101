"""Unit tests for plugins/module_utils/object_storage.py (LocalStore, S3Store on a real MinIO server)."""

from __future__ import annotations

import pytest
from minio.error import S3Error

from ansible_collections.nga4m.platform.plugins.module_utils import object_storage as osto
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from tests.helpers.procs import free_port
from tests.helpers.s3 import S3Server


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


# ------------------------------------------------------------------ endpoint / options

@pytest.mark.parametrize(
    "endpoint, secure, expected",
    [
        ("minio:9000", None, ("minio:9000", True)),
        ("minio:9000", False, ("minio:9000", False)),
        ("http://minio:9000", None, ("minio:9000", False)),
        ("https://s3.example.com", None, ("s3.example.com", True)),
        ("https://s3.example.com/", True, ("s3.example.com", True)),
        ("127.0.0.1:9000", False, ("127.0.0.1:9000", False)),
    ],
)
def test_parse_endpoint(endpoint, secure, expected):
    assert osto.parse_endpoint(endpoint, secure) == expected


@pytest.mark.parametrize(
    "endpoint, secure, message",
    [
        ("https://minio:9000", False, "uses https:// but secure is False"),
        ("http://minio:9000", True, "uses http:// but secure is True"),
        ("ftp://minio:9000", None, "scheme must be http or https"),
        ("http://minio:9000/bucket", None, "must not contain a path"),
        ("minio:9000/bucket", None, "without a path"),
        ("http://user:pw@minio:9000", None, "must not embed credentials"),
        ("minio:notaport", None, "invalid port"),
        ("", None, "endpoint is required"),
    ],
)
def test_parse_endpoint_errors(endpoint, secure, message):
    with pytest.raises(NGA4MError) as err:
        osto.parse_endpoint(endpoint, secure)
    assert message in str(err.value)


def test_argspec_shape():
    spec = osto.OBJECT_STORAGE_ARGSPEC
    assert set(spec) == {"endpoint", "access_key", "secret_key", "secure", "verify_tls", "ca_file", "region", "bucket", "create_bucket"}
    assert spec["secret_key"]["no_log"] is True and spec["access_key"]["no_log"] is True


def test_missing_credentials():
    with pytest.raises(NGA4MError, match="S3 credentials missing: set secret_key"):
        osto.S3Store.from_options(endpoint="minio:9000", access_key="a", bucket="models")
    with pytest.raises(NGA4MError, match="set access_key and secret_key"):
        osto.S3Store.from_options(endpoint="minio:9000", bucket="models")


def test_bad_bucket_name():
    with pytest.raises(NGA4MError, match="not a valid S3 bucket name"):
        osto.S3Store.from_options(endpoint="minio:9000", access_key="a", secret_key="b", bucket="Bad_Bucket")


def test_open_store_destinations(tmp_path):
    assert isinstance(osto.open_store(local_path=str(tmp_path)), osto.LocalStore)
    with pytest.raises(NGA4MError, match="mutually exclusive"):
        osto.open_store(local_path=str(tmp_path), bucket="models", endpoint="minio:9000")
    with pytest.raises(NGA4MError, match="no destination"):
        osto.open_store()


def test_normalize_key():
    assert osto.normalize_key("/a//b/") == "a/b"
    assert osto.normalize_key("") == ""
    with pytest.raises(NGA4MError, match="must not contain '.' or '..'"):
        osto.normalize_key("a/../b", "prefix")


# ------------------------------------------------------------------ LocalStore

def test_local_store_roundtrip(tmp_path):
    store = osto.LocalStore(tmp_path / "root")
    assert store.available() is False
    assert store.prepare(check_mode=True) is True and not (tmp_path / "root").exists()
    assert store.prepare() is True and store.available()
    info = store.put_bytes("a/b/c.txt", b"hello")
    assert info.sha256 == osto.sha256_bytes(b"hello")
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3000000)
    store.put_file("a/d/model.bin", str(src))
    assert store.stat("a/d/model.bin").sha256 == osto.sha256_file(str(src))
    assert store.checksum("missing") is None and store.stat("missing") is None
    assert store.get("a/b/c.txt") == b"hello" and store.get("nope") is None
    assert store.exists("a/b/c.txt")
    assert store.list("a") == ["a/b/c.txt", "a/d/model.bin"]
    assert store.uri("a") == str(tmp_path / "root" / "a")
    store.delete("a/b/c.txt")
    assert store.list("") == ["a/d/model.bin"]
    assert not (tmp_path / "root" / "a" / "b").exists()  # empty dirs pruned


def test_local_store_root_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NGA4MError, match="is not a directory"):
        osto.LocalStore(tmp_path / "f").prepare()


# ------------------------------------------------------------------ S3Store on MinIO

def _store(s3, bucket, **extra):
    return osto.S3Store.from_options(**s3.options(bucket, **extra))


def test_s3_store_roundtrip(s3, tmp_path):
    store = _store(s3, "unit-roundtrip")
    assert store.available() is False
    assert store.prepare(create=True, check_mode=True) is True
    assert store.stat("x") is None and store.list("") == [] and store.get("x") is None  # bucket would be created
    assert not s3.client().bucket_exists("unit-roundtrip")
    assert store.prepare(create=True) is True
    assert store.prepare(create=True) is False
    src = tmp_path / "model.bin"
    src.write_bytes(b"m" * 1000)
    written = store.put_file("repo/m/1/model.bin", str(src))
    info = store.stat("repo/m/1/model.bin")
    assert info.sha256 == osto.sha256_file(str(src)) == written.sha256
    assert info.size == 1000 and info.etag
    # the sha256 is object user metadata, visible to any S3 client
    meta = s3.client().stat_object("unit-roundtrip", "repo/m/1/model.bin").metadata
    assert meta["x-amz-meta-sha256"] == info.sha256
    store.put_bytes("repo/m/config.pbtxt", b'name: "m"\n')
    assert store.get("repo/m/config.pbtxt") == b'name: "m"\n'
    assert store.checksum("repo/m/config.pbtxt") == osto.sha256_bytes(b'name: "m"\n')
    assert store.list("repo") == ["repo/m/1/model.bin", "repo/m/config.pbtxt"]
    assert store.list("rep") == []  # prefixes are directories, not string prefixes
    assert store.uri("repo") == "s3://unit-roundtrip/repo"
    store.delete("repo/m/1/model.bin")
    assert store.exists("repo/m/1/model.bin") is False
    assert store.stat("repo/m/1/model.bin") is None


def test_s3_bucket_missing(s3):
    with pytest.raises(NGA4MError, match="bucket 'unit-missing' does not exist at .*set create_bucket: true"):
        _store(s3, "unit-missing").prepare(create=False)


def test_s3_unreachable_endpoint():
    store = osto.S3Store.from_options(endpoint=f"127.0.0.1:{free_port()}", access_key="a", secret_key="b", secure=False, bucket="models")
    store.client._http.connection_pool_kw["retries"] = None  # noqa: SLF001 - keep the test fast
    with pytest.raises(NGA4MError, match="cannot reach S3 endpoint 127.0.0.1:.*check endpoint, secure"):
        store.available()


class _FakeResponse:
    status = 403
    headers = {}
    data = b""


@pytest.mark.parametrize(
    "code, message",
    [
        ("InvalidAccessKeyId", "check access_key/secret_key"),
        ("SignatureDoesNotMatch", "check access_key/secret_key"),
        ("AccessDenied", "check access_key/secret_key"),
        ("NoSuchBucket", "does not exist"),
        ("InternalError", "failed at"),
    ],
)
def test_s3_error_messages(code, message):
    class Client:
        def bucket_exists(self, bucket):
            raise S3Error(_FakeResponse(), code, "refused", "/models", "req", "host")

    store = osto.S3Store(Client(), "models", endpoint="minio:9000")
    with pytest.raises(NGA4MError) as err:
        store.available()
    assert message in str(err.value)
