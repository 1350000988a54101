# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Federation filters used by the nga4m.platform.kube_prometheus_stack role (logic in module_utils/federation.py)."""

from __future__ import annotations

from ansible_collections.nga4m.platform.plugins.module_utils.federation import exposure_problems


def federation_exposure_problems(targets):
    return exposure_problems(targets)


class FilterModule:
    """Federation filters."""

    def filters(self):
        return {"federation_exposure_problems": federation_exposure_problems}
