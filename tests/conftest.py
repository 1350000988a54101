"""Shared pytest set-up: make ``ansible_collections.nga4m.platform`` importable."""

from __future__ import annotations

import sys

from tests.helpers.playbook import ensure_collection_tree

_tree = str(ensure_collection_tree())
if _tree not in sys.path:
    sys.path.insert(0, _tree)


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001 - pytest hook signature
    """Stop the session bed of this process (tests/integration/platform_bed.py), if one was started."""
    from tests.integration.platform_bed import stop_session_bed  # noqa: PLC0415

    stop_session_bed()
