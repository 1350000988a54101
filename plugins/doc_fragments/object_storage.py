# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the shared object storage options (OBJECT_STORAGE_ARGSPEC)."""


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """Doc fragment ``nga4m.platform.object_storage``."""

    DOCUMENTATION = r"""
options:
  endpoint:
    description:
      - S3 endpoint, as V(host:port) (for example V(minio.minio.svc:9000)) or as an V(http://) / V(https://) URL without a path.
      - A scheme in the URL decides O(secure); giving O(secure) that contradicts it is an error.
      - Required with O(bucket).
    type: str
  access_key:
    description:
      - S3 access key (AWS_ACCESS_KEY_ID). Required with O(bucket). Keep it in a vault or an environment lookup.
    type: str
  secret_key:
    description:
      - S3 secret key (AWS_SECRET_ACCESS_KEY). Required with O(bucket). Never logged.
    type: str
  secure:
    description:
      - Use HTTPS. Defaults to V(true), or to what the scheme of O(endpoint) says when it has one.
    type: bool
  verify_tls:
    description:
      - Verify the server certificate when O(secure) is on. Set V(false) only for self-signed test endpoints; prefer O(ca_file).
    type: bool
    default: true
  ca_file:
    description:
      - PEM file with the CA certificates that sign the endpoint's certificate.
    type: path
  region:
    description:
      - S3 region (for example V(us-east-1)). Used for signing and when the bucket is created. MinIO ignores it.
    type: str
  bucket:
    description:
      - Bucket that holds the objects. Must exist unless O(create_bucket=true).
    type: str
  create_bucket:
    description:
      - Create O(bucket) when it does not exist (not in check mode, where it is only reported).
    type: bool
    default: false
requirements:
  - minio (Python library, for S3 storage)
"""
