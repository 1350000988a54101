"""bcrypt hashes (module_utils/passwords.py): a known vector, random salts, refusals."""

from __future__ import annotations

import pytest

from ansible_collections.nga4m.platform.plugins.module_utils import passwords as pw
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError


def test_bcrypt_hash_matches_a_known_vector_and_verifies():
    # a classic bcrypt test vector (OpenBSD / crypt_blowfish test suites)
    assert pw.bcrypt_hash("U*U", rounds=5, salt="CCCCCCCCCCCCCCCCCCCCC.") == "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
    first, second = pw.bcrypt_hash("a long enough password"), pw.bcrypt_hash("a long enough password")
    assert first != second and first.startswith("$2b$12$") and len(first) == 60  # random salts
    assert pw.bcrypt_hash("a long enough password", salt=first[7:29]) == first


@pytest.mark.parametrize(("password", "needle"), [("", "empty"), ("x" * 73, "at most 72 bytes")])
def test_bcrypt_hash_refuses(password, needle):
    with pytest.raises(NGA4MError, match=needle):
        pw.bcrypt_hash(password)
