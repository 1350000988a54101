"""NGA4MModule / ObjectStorageModule: the behaviour every module of the collection gets from the base."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils._internal import _traceback
from ansible.module_utils.testing import patch_module_args

from ansible_collections.nga4m.platform.plugins.module_utils.ansible_module import NGA4MModule, ObjectStorageModule
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError


@pytest.fixture(autouse=True)
def _fresh_traceback_setting(monkeypatch):
    """AnsibleModule caches whether tracebacks are on (``_ansible_tracebacks_for``) per process: read it per test."""
    monkeypatch.setattr(_traceback, "_module_tracebacks_enabled_events", None)


def outcome(capsys, args, body, tracebacks: bool = False) -> dict:
    """Run ``body()`` as a module with ``args``; return what it printed (exit_json / fail_json)."""
    if tracebacks:  # what ANSIBLE_DISPLAY_TRACEBACK=error makes the controller send
        args = {**args, "_ansible_tracebacks_for": ["error"]}
    with patch_module_args(args), pytest.raises(SystemExit):
        body()
    return json.loads(capsys.readouterr().out)


def test_an_error_fails_with_its_message_and_the_traceback_of_its_cause(capsys):
    def broken():
        try:
            {}["missing"]
        except KeyError as exc:
            raise NGA4MError("what is wrong, and how to fix it") from exc

    got = outcome(capsys, {}, lambda: NGA4MModule({}).run(broken), tracebacks=True)
    assert got["failed"] is True and got["msg"] == "what is wrong, and how to fix it"
    assert "KeyError: 'missing'" in got["exception"]


def test_an_error_without_a_cause_fails_with_its_message_only(capsys):
    def broken():
        raise NGA4MError("plain")

    got = outcome(capsys, {}, lambda: NGA4MModule({}).run(broken), tracebacks=True)
    assert got["msg"] == "plain" and "NGA4MError" not in str(got.get("exception"))


@pytest.mark.parametrize(("diff", "shown"), [(False, False), (True, True)])
def test_a_result_carries_its_diff_only_under_diff_mode(capsys, diff, shown):
    args = {"_ansible_diff": diff}
    got = outcome(capsys, args, lambda: NGA4MModule({}).exit_with({"changed": True, "diff": {"before": "a", "after": "b"}}))
    assert ("diff" in got) is shown and got["changed"] is True


def test_a_missing_library_is_named(capsys):
    got = outcome(capsys, {}, lambda: NGA4MModule({}).require("minio", False, ImportError("No module named 'minio'")),
                  tracebacks=True)
    assert got["failed"] is True and "minio" in got["msg"] and "No module named" in got["exception"]


@pytest.mark.parametrize(("args", "words"), [
    ({"local_path": "/tmp/x", "bucket": "b"}, ["mutually exclusive", "local_path", "bucket"]),
    ({"local_path": "/tmp/x", "endpoint": "h:9000"}, ["mutually exclusive", "local_path", "endpoint"]),
    ({}, ["one of the following is required", "local_path", "bucket"]),
])
def test_object_storage_options_and_their_rules(capsys, args, words):
    got = outcome(capsys, args, lambda: ObjectStorageModule({}))
    assert got["failed"] is True and all(word in got["msg"] for word in words), got["msg"]


def test_object_storage_opens_a_local_store(capsys, tmp_path):
    def body():
        module = ObjectStorageModule({})
        store = module.store()
        store.prepare(create=True)
        module.exit_with({"changed": False, "uri": store.uri("k")})

    got = outcome(capsys, {"local_path": str(tmp_path / "repo")}, body)
    assert got["uri"].endswith("repo/k") and (tmp_path / "repo").is_dir()


def test_the_secret_key_is_never_printed(capsys):
    secret = "sëcret'q: #x"  # noqa: S105 - a test value
    got = outcome(capsys, {"bucket": "b", "endpoint": "127.0.0.1:1", "access_key": "access-key-1", "secret_key": secret},
                  lambda: ObjectStorageModule({}).run(_fail_with, secret))
    assert secret not in json.dumps(got, ensure_ascii=False) and "fails" in got["msg"]


def _fail_with(secret):
    raise NGA4MError(f"fails with {secret}")
