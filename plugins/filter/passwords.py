# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Password filters shared by the roles (logic in module_utils/passwords.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.passwords import bcrypt_hash as _bcrypt_hash


def bcrypt_hash(password, rounds=12):
    try:
        return _bcrypt_hash(password, rounds)
    except NGA4MError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    """Password filters."""

    def filters(self):
        return {"bcrypt_hash": bcrypt_hash}
