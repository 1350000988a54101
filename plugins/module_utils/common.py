# Copyright (c) NGA4M developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Shared definitions for nga4m.platform module_utils (no Ansible imports)."""


class NGA4MError(Exception):
    """The single error type of nga4m.platform logic.

    Raised by module_utils code with a message that says what is wrong and how
    to fix it; modules catch it in ``main()`` and call ``fail_json(msg=str(err))``.
    """
