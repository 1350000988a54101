# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bcrypt password hashes: the Dex static user (kubeflow) and the SC Prometheus basic auth (kube_prometheus_stack)."""

from __future__ import annotations

import base64
import os
import warnings

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError

_BCRYPT_B64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_STD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _bcrypt_salt() -> str:
    """22 characters of bcrypt's base64 alphabet from 16 random bytes (canonical: the last one carries 2 bits)."""
    std = base64.b64encode(os.urandom(16)).decode().rstrip("=")
    return std.translate(str.maketrans(_STD_B64, _BCRYPT_B64))


def bcrypt_hash(password: str, rounds: int = 12, salt: str | None = None) -> str:
    """A bcrypt (``$2b$``) hash of ``password`` (Dex users, htpasswd and Prometheus web configs).

    Uses the ``bcrypt`` package when installed, else the system's crypt(3)
    through Python's ``crypt`` module (libxcrypt, as on Debian and EL9, supports
    bcrypt). ``salt`` (22 characters) is for tests; a random one otherwise.
    """
    password = str(password)
    if not password:
        raise NGA4MError("refusing to hash an empty password")
    if len(password.encode()) > 72:
        raise NGA4MError("bcrypt uses at most 72 bytes of a password: choose a shorter password")
    if not 4 <= int(rounds) <= 31:
        raise NGA4MError("bcrypt rounds must be 4..31")
    setting = f"$2b${int(rounds):02d}${salt or _bcrypt_salt()}"
    try:
        import bcrypt as _bcrypt  # noqa: PLC0415 - optional dependency

        return _bcrypt.hashpw(password.encode(), setting.encode()).decode()
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt as _crypt  # noqa: PLC0415 - stdlib until Python 3.12
        hashed = _crypt.crypt(password, setting)
    except (ImportError, OSError):
        hashed = None
    if not hashed or not hashed.startswith(setting[:7]) or len(hashed) != 60:
        raise NGA4MError(
            "hashing a password needs bcrypt on the controller: install the Python package bcrypt "
            "(pip install bcrypt; in the execution environment: add it to requirements.txt). Python 3.13+ has no crypt module."
        )
    return hashed
