# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put, remove or read one object in object storage (logic of ``nga4m.platform.s3_object``).

Plain Python on top of ``object_storage`` stores (``S3Store``/``LocalStore``); no
Ansible imports. ``changed`` comes from comparing sha256 checksums (the stored
``x-amz-meta-sha256`` metadata), so nothing is downloaded to decide.
"""

import os

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import (
    normalize_key,
    sha256_bytes,
    sha256_file,
)

DIFF_LIMIT = 64 * 1024
"""Largest text object shown in a diff (bytes)."""


def _text_or_none(data):
    if data is None or len(data) > DIFF_LIMIT:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _diff_view(data, sha, sensitive):
    if data is None and sha is None:
        return ""
    if sensitive:
        return f"<sensitive object, sha256 {sha}>\n"
    text = _text_or_none(data)
    return text if text is not None else f"<binary or large object, sha256 {sha}>\n"


def read_object(store, key):
    """What object ``key`` holds: exists, sha256, size and its text ``content`` (None when missing)."""
    key = normalize_key(key, "key")
    if not key:
        raise NGA4MError("key must name an object, e.g. 'kubeconfigs/sc1' (not empty or '/')")
    result = {"changed": False, "key": key, "uri": store.uri(key), "exists": False, "sha256": None, "size": None, "content": None}
    if not store.available():
        return result
    info = store.stat(key)
    if info is None:
        return result
    data = store.get(key)
    result.update(exists=data is not None, sha256=info.sha256, size=info.size,
                  content=data.decode("utf-8", errors="replace") if data is not None else None)
    return result


def ensure_object(store, key, state="present", content=None, src=None, sensitive=False,
                  check_mode=False, create_bucket=False, content_type="application/octet-stream"):
    """Make object ``key`` match ``state`` (present/absent; ``get`` reads); return changed, key, uri, sha256, size, diff."""
    key = normalize_key(key, "key")
    if not key:
        raise NGA4MError("key must name an object, e.g. 'datasets/iris.csv' (not empty or '/')")
    if state == "present":
        if (content is None) == (src is None):
            raise NGA4MError("state=present needs exactly one of content (text) or src (a file on the controller)")
        if src is not None and not os.path.isfile(src):
            raise NGA4MError(f"src {src} does not exist or is not a file")
    created_bucket = store.prepare(create=create_bucket, check_mode=check_mode) if state == "present" else False
    if state == "get":
        return read_object(store, key)
    if state != "present" and not store.available():
        return {"changed": False, "key": key, "uri": store.uri(key), "exists": False, "diff": {"before": "", "after": ""}}
    info = store.stat(key)
    result = {"key": key, "uri": store.uri(key), "bucket_created": created_bucket}

    before_data = store.get(key) if (info is not None and not sensitive and info.size <= DIFF_LIMIT) else None
    before = _diff_view(before_data, info.sha256 if info else None, sensitive) if info is not None else ""

    if state == "absent":
        changed = info is not None
        if changed and not check_mode:
            store.delete(key)
        result.update(changed=changed, exists=False, diff={"before": before, "after": ""})
        return result

    if content is not None:
        data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
        digest = sha256_bytes(data)
        size = len(data)
    else:
        data = None
        digest = sha256_file(src)
        size = os.path.getsize(src)
    changed = info is None or info.sha256 != digest
    if changed and not check_mode:
        if data is not None:
            store.put_bytes(key, data, content_type=content_type)
        else:
            store.put_file(key, src, sha256=digest, content_type=content_type)
    if data is None and size <= DIFF_LIMIT and not sensitive:
        with open(src, "rb") as handle:
            after_data = handle.read()
    else:
        after_data = data
    result.update(changed=changed, exists=True, sha256=digest, size=size,
                  diff={"before": before, "after": _diff_view(after_data, digest, sensitive)})
    return result
