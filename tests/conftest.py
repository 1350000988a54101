"""Shared pytest set-up: make ``ansible_collections.nga4m.platform`` importable."""

from __future__ import annotations

import sys

from tests.helpers.playbook import ensure_collection_tree

_tree = str(ensure_collection_tree())
if _tree not in sys.path:
    sys.path.insert(0, _tree)
