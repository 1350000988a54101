# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja tests for Kubernetes and S3 names (rules in module_utils/names.py): ``x is nga4m.platform.dns1123_label``."""

from __future__ import annotations

from ansible_collections.nga4m.platform.plugins.module_utils import names


class TestModule:
    """Name tests."""

    def tests(self):
        return {
            "dns1123_label": names.is_dns1123_label,
            "dns1035_label": names.is_dns1035_label,
            "dns1123_subdomain": names.is_dns1123_subdomain,
            "s3_bucket_name": names.is_s3_bucket_name,
        }
