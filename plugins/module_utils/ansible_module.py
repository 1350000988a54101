# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AnsibleModule of nga4m.platform's modules (as amazon.aws' AnsibleAWSModule is to its modules).

``NGA4MModule`` owns what every module of the collection did for itself: check mode on, a missing
Python library reported with the package to install, an ``NGA4MError`` turned into ``fail_json``
with its message *and* the traceback of its cause (``exception=``: shown with ``-vvv``, from
ansible-core 2.19 with ``ANSIBLE_DISPLAY_TRACEBACK=error``), and the ``diff`` of a result returned
only when Ansible runs with ``--diff``.

``ObjectStorageModule`` adds the shared object storage: the options of the doc fragment
``nga4m.platform.object_storage`` plus ``local_path`` (a directory instead of a bucket), their
exclusion rules, and ``store()``, which checks for the minio SDK and opens the store.
"""

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.nga4m.platform.plugins.module_utils.common import NGA4MError
from ansible_collections.nga4m.platform.plugins.module_utils.object_storage import (
    HAS_MINIO,
    MINIO_IMPORT_ERROR,
    OBJECT_STORAGE_ARGSPEC,
    open_store,
)


class NGA4MModule(AnsibleModule):
    """AnsibleModule with check mode on, library checks, NGA4MError handling and --diff-aware results."""

    def __init__(self, argument_spec, **kwargs):
        kwargs.setdefault("supports_check_mode", True)
        super().__init__(argument_spec=argument_spec, **kwargs)

    def require(self, package, available, import_error):
        """Fail naming ``package`` (what to pip install) when its import failed."""
        if not available:
            self.fail_json(msg=missing_required_lib(package), exception=str(import_error))

    def run(self, action, *args, **kwargs):
        """``action(*args, **kwargs)``; an NGA4MError fails the task with its message and its cause's traceback."""
        try:
            return action(*args, **kwargs)
        except NGA4MError as err:
            self.fail_from(err)
        return None  # not reached: fail_from exits

    def fail_from(self, err):
        """fail_json with the NGA4MError's message and the traceback of what caused it (if anything did)."""
        cause = err.__cause__ if err.__cause__ is not None else (None if err.__suppress_context__ else err.__context__)
        detail = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__)) if cause else None
        self.fail_json(msg=str(err), exception=detail)

    def exit_with(self, result):
        """exit_json with ``result``; its ``diff`` only when the task runs with --diff."""
        diff = result.pop("diff", None)
        if self._diff and diff is not None:
            result["diff"] = diff
        self.exit_json(**result)


class ObjectStorageModule(NGA4MModule):
    """NGA4MModule over the shared object storage (or ``local_path``); see the module docstring."""

    def __init__(self, argument_spec, mutually_exclusive=(), required_one_of=(), **kwargs):
        spec = copy.deepcopy(OBJECT_STORAGE_ARGSPEC)
        spec["local_path"] = {"type": "path"}
        spec.update(argument_spec)
        super().__init__(
            spec,
            mutually_exclusive=[["local_path", "bucket"], ["local_path", "endpoint"], *mutually_exclusive],
            required_one_of=[["local_path", "bucket"], *required_one_of],
            **kwargs,
        )

    def store(self):
        """The object store the options name (the minio SDK is needed only for a bucket)."""
        if not self.params["local_path"]:
            self.require("minio", HAS_MINIO, MINIO_IMPORT_ERROR)
        options = {key: self.params[key] for key in OBJECT_STORAGE_ARGSPEC}
        return self.run(open_store, local_path=self.params["local_path"], **options)
