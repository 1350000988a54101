# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters used by the nga4m.platform.helm_release role (logic in module_utils/helm.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.nga4m.platform.plugins.module_utils import helm as _helm
from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError


def helm_pending_records(secrets, timeout, now, grace=60):
    try:
        return _helm.pending_records(secrets, timeout, now, grace)
    except NGA4MError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    """Helm release filters."""

    def filters(self):
        return {"helm_pending_records": helm_pending_records}
