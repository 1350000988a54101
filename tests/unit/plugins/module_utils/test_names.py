"""module_utils/names.py and the nga4m.platform name tests built on it."""

from __future__ import annotations

import pytest

from ansible_collections.nga4m.platform.plugins.module_utils import names
from ansible_collections.nga4m.platform.plugins.test.names import TestModule as NamesTestPlugin


@pytest.mark.parametrize("value, label, label1035, subdomain, bucket", [
    ("sc1", True, True, True, True),
    ("models", True, True, True, True),
    ("1st", True, False, True, True),
    ("a" * 63, True, True, True, True),
    ("a" * 64, False, False, True, False),  # the 63-character limit that several preflights used to miss
    ("Sc1", False, False, False, False),
    ("-sc1", False, False, False, False),
    ("sc1-", False, False, False, False),
    ("a.b", False, False, True, True),
    ("a..b", False, False, False, False),
    ("192.168.1.10", False, False, True, False),
    ("ab", True, True, True, False),
    ("", False, False, False, False),
    (None, False, False, False, False),
    (12, False, False, False, False),
])
def test_name_rules(value, label, label1035, subdomain, bucket):
    assert names.is_dns1123_label(value) is label
    assert names.is_dns1035_label(value) is label1035
    assert names.is_dns1123_subdomain(value) is subdomain
    assert names.is_s3_bucket_name(value) is bucket


def test_subdomain_length_and_the_test_plugin_names():
    assert names.is_dns1123_subdomain(".".join(["a" * 63] * 3) + "." + "b" * 61)  # 253 characters
    assert not names.is_dns1123_subdomain(".".join(["a" * 63] * 4))  # 255
    assert set(NamesTestPlugin().tests()) == {"dns1123_label", "dns1035_label", "dns1123_subdomain", "s3_bucket_name"}
