# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared definitions for nga4m.platform module_utils (no Ansible imports)."""


class NGA4MError(Exception):
    """The single error type of nga4m.platform logic.

    Raised by module_utils code with a message that says what is wrong and how
    to fix it; modules catch it in ``main()`` and call ``fail_json(msg=str(err))``.
    """
