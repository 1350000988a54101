# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The name rules of Kubernetes and S3, in one place (modules, filters and the ``nga4m.platform`` test plugins)."""

from __future__ import annotations

import re

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def is_dns1123_label(value):
    """A DNS-1123 label (namespace, Service, cluster names): at most 63 of a-z 0-9 '-', alphanumeric at both ends."""
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL.match(value))


def is_dns1035_label(value):
    """A DNS-1035 label (an InferenceService or Service name KServe derives hosts from): a DNS-1123 label starting with a letter."""
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_1035.match(value))


def is_dns1123_subdomain(value):
    """A DNS-1123 subdomain (most object names): at most 253 characters, dot-separated DNS-1123 labels."""
    return (isinstance(value, str) and 0 < len(value) <= 253
            and all(_LABEL.match(part) for part in value.split(".")))


def is_s3_bucket_name(value):
    """An S3 bucket name: 3-63 of a-z 0-9 '.' '-', alphanumeric at both ends, no '..', not an IPv4 address."""
    return (isinstance(value, str) and bool(_BUCKET.match(value)) and ".." not in value
            and not _IPV4.match(value))
