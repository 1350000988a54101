# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Object storage for nga4m.platform: one small interface, two backends.

``LocalStore(root_dir)`` keeps objects as files under a directory;
``S3Store(client, bucket)`` keeps them in an S3 bucket through the minio SDK.
Both expose the same methods (keys are ``/``-separated, relative to the
store root):

* ``available()`` - does the bucket/root exist
* ``prepare(create=..., check_mode=False)`` - make sure the bucket/root exists
* ``stat(key)`` -> ``ObjectInfo`` or ``None``; ``checksum(key)`` -> sha256 or ``None``
* ``exists(key)``, ``get(key)`` -> bytes or ``None``, ``list(prefix)`` -> keys
* ``put_bytes(key, data)``, ``put_file(key, path, sha256=None)``, ``delete(key)``
* ``uri(key)`` (``s3://bucket/key`` or a filesystem path), ``location(key)``

Every upload records the content's sha256 (``x-amz-meta-sha256`` on S3) so a
later run compares checksums without downloading the object. Every failure is
an ``NGA4MError`` with a message that says what to fix.

This file has no Ansible imports: modules, roles' helpers and plain Python
pipelines (examples/iris) use it alike. ``OBJECT_STORAGE_ARGSPEC`` is the shared
Ansible option set (deepcopy it into a module's argument spec).
"""

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.names import is_s3_bucket_name

try:
    import urllib3
    from minio import Minio
    from minio.error import InvalidResponseError, S3Error, ServerError

    HAS_MINIO = True
    MINIO_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised when minio is absent
    HAS_MINIO = False
    MINIO_IMPORT_ERROR = _exc
    Minio = None

SHA256_META = "sha256"
"""User metadata key holding the sha256 of an object (sent as ``x-amz-meta-sha256``)."""

DEFAULT_PART_SIZE = 0
"""Multipart part size for S3 uploads: 0 lets the minio SDK choose (5 MiB parts, larger only
when an object would need more than 10000 parts), uploaded 3 in parallel. Measured against
moto on 2 cores, 8/16/32 MiB parts were not faster and hold more memory per parallel part."""

PARALLEL_UPLOADS = 3

_CHUNK = 1024 * 1024

OBJECT_STORAGE_ARGSPEC = {
    "endpoint": {"type": "str"},
    "access_key": {"type": "str", "no_log": True},
    "secret_key": {"type": "str", "no_log": True},
    "secure": {"type": "bool"},
    "verify_tls": {"type": "bool", "default": True},
    "ca_file": {"type": "path"},
    "region": {"type": "str"},
    "bucket": {"type": "str"},
    "create_bucket": {"type": "bool", "default": False},
}
"""Shared connection options (documented by doc fragment ``nga4m.platform.object_storage``)."""

S3_OPTION_NAMES = tuple(OBJECT_STORAGE_ARGSPEC)


@dataclass
class ObjectInfo:
    """What a store knows about one object without reading its content."""

    key: str
    size: int
    sha256: Optional[str]
    etag: Optional[str] = None
    last_modified: Optional[str] = None


def sha256_file(path):
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data):
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def normalize_key(key, what="key"):
    """Return ``key`` without leading/trailing ``/``; refuse ``.``/``..`` segments and backslashes."""
    if key is None:
        return ""
    if not isinstance(key, str):
        raise NGA4MError(f"{what} must be a string, got {type(key).__name__}")
    parts = [p for p in key.strip("/").split("/") if p != ""]
    for part in parts:
        if part in (".", ".."):
            raise NGA4MError(f"{what} {key!r} must not contain '.' or '..' path segments; give a plain path such as 'models/triton'")
        if "\\" in part or "\x00" in part:
            raise NGA4MError(f"{what} {key!r} must not contain backslashes or NUL characters")
    return "/".join(parts)


def join_key(*parts):
    """Join key parts with ``/``, skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class LocalStore:
    """Objects as files under ``root_dir`` (a Triton model repository on disk).

    Writes go to a temporary file in the same directory and are renamed into
    place, so a reader never sees a partial file. The sha256 is computed from
    the file content (no side files).
    """

    kind = "local"

    def __init__(self, root_dir):
        if not root_dir:
            raise NGA4MError("local_path must be a directory path")
        self.root = os.path.abspath(os.path.expanduser(str(root_dir)))

    def describe(self):
        return f"local directory {self.root}"

    def path(self, key):
        key = normalize_key(key)
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def location(self, key):
        return self.path(key)

    def uri(self, key=""):
        return self.path(key)

    def available(self):
        """True when the root directory exists."""
        return os.path.isdir(self.root)

    def prepare(self, create=True, check_mode=False):
        """Check the root directory; return True when it is (or would be) created."""
        if self.available():
            return False
        if os.path.exists(self.root):
            raise NGA4MError(f"local_path {self.root} exists and is not a directory")
        if not create:
            raise NGA4MError(f"local_path {self.root} does not exist; create it first")
        if not check_mode:
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise NGA4MError(f"cannot create local_path {self.root}: {exc.strerror or exc}") from exc
        return True

    def stat(self, key):
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            st = os.stat(path)
            return ObjectInfo(key=normalize_key(key), size=st.st_size, sha256=sha256_file(path), etag=None, last_modified=str(st.st_mtime_ns))
        except OSError as exc:
            raise NGA4MError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def checksum(self, key):
        info = self.stat(key)
        return info.sha256 if info else None

    def exists(self, key):
        return os.path.isfile(self.path(key))

    def get(self, key):
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise NGA4MError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def list(self, prefix=""):
        """Keys of all files under ``prefix`` (recursive, sorted)."""
        base = self.path(prefix)
        if not os.path.isdir(base):
            return [normalize_key(prefix)] if os.path.isfile(base) else []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".nga4m-tmp-"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                keys.append(rel.replace(os.sep, "/"))
        return sorted(keys)

    def _atomic_write(self, key, writer):
        path = self.path(key)
        directory = os.path.dirname(path)
        tmp = None
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".nga4m-tmp-", dir=directory)
            with os.fdopen(fd, "wb") as handle:
                writer(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            raise NGA4MError(f"cannot write {path}: {exc.strerror or exc}") from exc
        finally:
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def put_bytes(self, key, data, content_type="application/octet-stream"):  # pylint: disable=unused-argument
        self._atomic_write(key, lambda handle: handle.write(data))
        return ObjectInfo(key=normalize_key(key), size=len(data), sha256=sha256_bytes(data))

    def put_file(self, key, path, sha256=None, content_type="application/octet-stream"):  # pylint: disable=unused-argument
        def copy(handle):
            with open(path, "rb") as src:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    handle.write(chunk)

        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise NGA4MError(f"cannot read {path}: {exc.strerror or exc}") from exc
        self._atomic_write(key, copy)
        return ObjectInfo(key=normalize_key(key), size=size, sha256=sha256 or sha256_file(path))

    def delete(self, key):
        path = self.path(key)
        try:
            if os.path.isfile(path):
                os.unlink(path)
            # prune empty parent directories up to the root
            parent = os.path.dirname(path)
            while parent.startswith(self.root + os.sep) and os.path.isdir(parent) and not os.listdir(parent):
                os.rmdir(parent)
                parent = os.path.dirname(parent)
        except OSError as exc:
            raise NGA4MError(f"cannot delete {path}: {exc.strerror or exc}") from exc


def parse_endpoint(endpoint, secure=None):
    """Split ``endpoint`` (``host:port`` or ``http(s)://host:port``) into ``(host_port, secure)``.

    A scheme decides ``secure``; an explicit ``secure`` that contradicts it is an
    error. Without scheme, ``secure`` defaults to True (as in the minio SDK).
    """
    if not endpoint or not isinstance(endpoint, str) or not endpoint.strip():
        raise NGA4MError("endpoint is required for S3 storage: give host:port (for example minio.example.com:9000) or an http(s):// URL")
    text = endpoint.strip()
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise NGA4MError(f"endpoint {endpoint!r}: scheme must be http or https, got {parts.scheme!r}")
        url_secure = scheme == "https"
        if secure is not None and bool(secure) != url_secure:
            raise NGA4MError(
                f"endpoint {endpoint!r} uses {scheme}:// but secure is {bool(secure)}; drop the scheme or set secure: {str(url_secure).lower()}"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise NGA4MError(f"endpoint {endpoint!r} must not contain a path or query; give only scheme://host:port (the bucket goes in 'bucket')")
        if parts.username or parts.password:
            raise NGA4MError(f"endpoint {endpoint!r} must not embed credentials; use access_key and secret_key")
        netloc = parts.netloc
        secure = url_secure
    else:
        netloc = text
        if "/" in netloc:
            raise NGA4MError(f"endpoint {endpoint!r} must be host:port without a path (the bucket goes in 'bucket')")
        secure = True if secure is None else bool(secure)
    try:
        probe = urlsplit("//" + netloc)
        port = probe.port
        host = probe.hostname
    except ValueError as exc:
        raise NGA4MError(f"endpoint {endpoint!r} has an invalid port: {exc}") from exc
    if not host:
        raise NGA4MError(f"endpoint {endpoint!r} has no host name")
    if port is not None and not 0 < port < 65536:
        raise NGA4MError(f"endpoint {endpoint!r} has an invalid port")
    return netloc, secure


def validate_bucket_name(bucket):
    if not bucket:
        raise NGA4MError("bucket is required for S3 storage")
    if not is_s3_bucket_name(bucket):
        raise NGA4MError(
            f"bucket {bucket!r} is not a valid S3 bucket name (3-63 characters: lowercase letters, digits, '.' and '-',"
            " starting and ending with a letter or digit, no '..', not an IP address)"
        )
    return bucket


def make_minio_client(endpoint, access_key=None, secret_key=None, secure=None, verify_tls=True, ca_file=None, region=None,
                      connect_timeout=10.0, read_timeout=300.0, retries=3):
    """Build a ``minio.Minio`` client with explicit TLS and timeout settings (no network I/O)."""
    if not HAS_MINIO:
        raise NGA4MError(f"the 'minio' Python library is required for S3 storage: {MINIO_IMPORT_ERROR}")
    host_port, secure = parse_endpoint(endpoint, secure)
    if not access_key or not secret_key:
        missing = [n for n, v in (("access_key", access_key), ("secret_key", secret_key)) if not v]
        raise NGA4MError(
            f"S3 credentials missing: set {' and '.join(missing)}"
            " (for example from a vault variable or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY environment)"
        )
    if ca_file and not os.path.isfile(ca_file):
        raise NGA4MError(f"ca_file {ca_file} does not exist")
    pool_args = {
        "timeout": urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        "maxsize": 10,
        "retries": urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    }
    if secure:
        if verify_tls:
            pool_args["cert_reqs"] = "CERT_REQUIRED"
            if ca_file:
                pool_args["ca_certs"] = ca_file
        else:
            pool_args["cert_reqs"] = "CERT_NONE"
    http = urllib3.PoolManager(**pool_args)
    return Minio(host_port, access_key=access_key, secret_key=secret_key, secure=secure, region=region or None,
                 http_client=http, cert_check=bool(verify_tls))


def _describe_exception(exc):
    """Short human text for a transport or S3 error."""
    if HAS_MINIO and isinstance(exc, S3Error):
        return f"{exc.code}: {exc.message}"
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    return re.sub(r"<urllib3[^>]*>: ", "", text)


class S3Store:
    """Objects in an S3 bucket through a ``minio.Minio`` client."""

    kind = "s3"

    def __init__(self, client, bucket, endpoint=None, region=None, part_size=DEFAULT_PART_SIZE):
        if not HAS_MINIO:
            raise NGA4MError(f"the 'minio' Python library is required for S3 storage: {MINIO_IMPORT_ERROR}")
        self.client = client
        self.bucket = validate_bucket_name(bucket)
        self.endpoint = endpoint or getattr(getattr(client, "_base_url", None), "host", None) or "S3"
        self.region = region or None
        self.part_size = part_size
        self._bucket_missing = False  # set by prepare(check_mode=True) when the bucket would be created

    @classmethod
    def from_options(cls, endpoint=None, access_key=None, secret_key=None, secure=None, verify_tls=True, ca_file=None,
                     region=None, bucket=None, create_bucket=False, **_ignored):  # pylint: disable=unused-argument
        """Build a store from the ``OBJECT_STORAGE_ARGSPEC`` options (no network I/O yet)."""
        validate_bucket_name(bucket)
        client = make_minio_client(endpoint, access_key, secret_key, secure, verify_tls, ca_file, region)
        return cls(client, bucket, endpoint=parse_endpoint(endpoint, secure)[0], region=region)

    def describe(self):
        return f"bucket {self.bucket!r} at {self.endpoint}"

    def location(self, key):
        return normalize_key(key)

    def uri(self, key=""):
        key = normalize_key(key)
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def _fail(self, action, exc):
        text = _describe_exception(exc)
        if HAS_MINIO and isinstance(exc, S3Error):
            if exc.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken"):
                return NGA4MError(f"S3 {action} refused by {self.endpoint} ({text}): check access_key/secret_key and the bucket policy")
            if exc.code == "NoSuchBucket":
                return NGA4MError(f"bucket {self.bucket!r} does not exist at {self.endpoint}; create it or set create_bucket: true")
            return NGA4MError(f"S3 {action} failed at {self.endpoint}: {text}")
        if HAS_MINIO and isinstance(exc, (ServerError, InvalidResponseError)):
            return NGA4MError(f"S3 {action} failed at {self.endpoint}: server error {text}")
        if HAS_MINIO and isinstance(exc, urllib3.exceptions.SSLError):
            return NGA4MError(f"TLS error talking to {self.endpoint} during {action}: {text}; check secure, verify_tls and ca_file")
        if HAS_MINIO and isinstance(exc, urllib3.exceptions.HTTPError):
            return NGA4MError(f"cannot reach S3 endpoint {self.endpoint} during {action}: {text}; check endpoint, secure and that the server is running")
        if isinstance(exc, OSError):
            return NGA4MError(f"S3 {action} failed at {self.endpoint}: {exc.strerror or exc}")
        return NGA4MError(f"S3 {action} failed at {self.endpoint}: {text}")

    def _call(self, action, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except NGA4MError:
            raise
        except Exception as exc:  # pylint: disable=broad-except  # wrapped into our single error type
            raise self._fail(action, exc) from exc

    def available(self):
        """True when the bucket exists (network call)."""
        return bool(self._call(f"check of bucket {self.bucket!r}", self.client.bucket_exists, self.bucket))

    def prepare(self, create=False, check_mode=False):
        """Check the bucket exists (creating it when ``create``); return True when created (or would be)."""
        if self.available():
            self._bucket_missing = False
            return False
        if not create:
            raise NGA4MError(f"bucket {self.bucket!r} does not exist at {self.endpoint}; create it or set create_bucket: true")
        if check_mode:
            self._bucket_missing = True
        else:
            self._call(f"creation of bucket {self.bucket!r}", self.client.make_bucket, self.bucket, self.region)
            self._bucket_missing = False
        return True

    def stat(self, key):
        key = normalize_key(key)
        if self._bucket_missing:
            return None
        try:
            obj = self.client.stat_object(self.bucket, key)
        except Exception as exc:  # pylint: disable=broad-except
            if HAS_MINIO and isinstance(exc, S3Error) and exc.code in ("NoSuchKey", "NotFound", "ResourceNotFound"):
                return None
            raise self._fail(f"stat of {self.uri(key)}", exc) from exc
        meta = obj.metadata or {}
        sha = meta.get("x-amz-meta-" + SHA256_META) or meta.get("X-Amz-Meta-Sha256")
        modified = obj.last_modified.isoformat() if obj.last_modified else None
        return ObjectInfo(key=key, size=obj.size, sha256=sha, etag=obj.etag, last_modified=modified)

    def checksum(self, key):
        info = self.stat(key)
        return info.sha256 if info else None

    def exists(self, key):
        return self.stat(key) is not None

    def get(self, key):
        key = normalize_key(key)
        if self._bucket_missing:
            return None
        response = None
        try:
            response = self.client.get_object(self.bucket, key)
            return response.read()
        except Exception as exc:  # pylint: disable=broad-except
            if HAS_MINIO and isinstance(exc, S3Error) and exc.code in ("NoSuchKey", "NotFound"):
                return None
            raise self._fail(f"read of {self.uri(key)}", exc) from exc
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def list(self, prefix=""):
        prefix = normalize_key(prefix)
        if self._bucket_missing:
            return []
        query = prefix + "/" if prefix else None
        return self._call(
            f"listing of {self.uri(prefix)}",
            lambda: sorted(o.object_name for o in self.client.list_objects(self.bucket, prefix=query, recursive=True)),
        )

    def put_bytes(self, key, data, content_type="application/octet-stream"):
        import io  # pylint: disable=import-outside-toplevel

        key = normalize_key(key)
        digest = sha256_bytes(data)
        result = self._call(
            f"write of {self.uri(key)}",
            self.client.put_object, self.bucket, key, io.BytesIO(data), len(data),
            content_type=content_type, metadata={SHA256_META: digest},
        )
        return ObjectInfo(key=key, size=len(data), sha256=digest, etag=getattr(result, "etag", None))

    def put_file(self, key, path, sha256=None, content_type="application/octet-stream"):
        key = normalize_key(key)
        digest = sha256 or sha256_file(path)
        result = self._call(
            f"write of {self.uri(key)}",
            self.client.fput_object, self.bucket, key, path,
            content_type=content_type, metadata={SHA256_META: digest}, part_size=self.part_size,
            num_parallel_uploads=PARALLEL_UPLOADS,
        )
        return ObjectInfo(key=key, size=os.path.getsize(path), sha256=digest, etag=getattr(result, "etag", None))

    def delete(self, key):
        key = normalize_key(key)
        self._call(f"delete of {self.uri(key)}", self.client.remove_object, self.bucket, key)


def open_store(local_path=None, **options):
    """Return a ``LocalStore`` for ``local_path`` or an ``S3Store`` from the S3 options.

    Exactly one destination: ``local_path`` or ``bucket`` (with ``endpoint`` and credentials).
    """
    s3_given = [k for k in ("endpoint", "bucket", "access_key", "secret_key") if options.get(k)]
    if local_path and s3_given:
        raise NGA4MError(f"local_path and S3 options ({', '.join(s3_given)}) are mutually exclusive: choose one destination")
    if local_path:
        return LocalStore(local_path)
    if not options.get("bucket"):
        raise NGA4MError("no destination: set local_path, or bucket and endpoint (with access_key and secret_key) for S3 storage")
    return S3Store.from_options(**options)


def open_store_from_env(endpoint, bucket, secure=False, region=None, environ=None):
    """An ``S3Store`` whose credentials come from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.

    How pipeline steps, model servers and pods receive them (a mounted Secret). A scheme
    in ``endpoint`` decides TLS; ``secure`` applies to a bare ``host:port``.
    """
    env = os.environ if environ is None else environ
    return open_store(
        endpoint=endpoint,
        secure=None if "://" in endpoint else secure,
        region=region or None,
        bucket=bucket,
        access_key=env.get("AWS_ACCESS_KEY_ID"),
        secret_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )
