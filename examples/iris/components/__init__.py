# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Component functions of the iris pipeline (plain functions; pipeline.py turns them into KFP components).

KFP lightweight components serialize each function's *source*: every import is
inside the function, and nothing from this package is shared between them at run
time. Steps that need the collection's module_utils (object storage, Triton
layout) put the directories listed in ``NGA4M_COLLECTION_PATH`` on ``sys.path``
first; the step images set it, the local runner (``pipeline.py --run-local``)
exports it.
"""

from .data import load_data, preprocess
from .deploy import publish, serve
from .model import build_model, convert, train

__all__ = ["load_data", "preprocess", "build_model", "train", "convert", "publish", "serve"]
