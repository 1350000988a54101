# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback plugin nga4m.platform.cluster_summary: which clusters a run converged, after the recap."""

from __future__ import annotations

DOCUMENTATION = r"""
name: cluster_summary
type: aggregate
short_description: After the play recap, say which clusters of the inventory converged and which failed
version_added: 0.1.0
description:
  - At the end of a run it prints, after the play recap, one short summary of the clusters of the inventory
    (the hosts of groups C(pc) and C(sc)) - which completed, which failed and at which task, and which the run left out
    (C(--limit)).
  - A task whose failure was rescued or ignored does not count; a failure of a C(no_log) task is named by its task only.
  - The summary goes to stderr, so a machine-readable stdout callback (json) stays valid.
  - The repository's C(ansible.cfg) enables it; elsewhere enable it with
    C(ANSIBLE_CALLBACKS_ENABLED=nga4m.platform.cluster_summary) (also in an AWX job template's environment).
author:
  - NGA4M developers (@nga4m)
requirements:
  - enable it in C(callbacks_enabled) (ansible.cfg) or C(ANSIBLE_CALLBACKS_ENABLED)
"""

from ansible.plugins.callback import CallbackBase

CLUSTER_GROUPS = ("pc", "sc")


class CallbackModule(CallbackBase):
    """Collect the last unrecovered failure of each host; print the per-cluster outcome at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "nga4m.platform.cluster_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._clusters = {}  # host name -> group
        self._failed_at = {}  # host name -> "failed at task 'name': message"
        self._plays = []  # every play of the playbook, imports expanded
        self._started = 0  # how many of them started
        self._inventory = None

    def v2_playbook_on_start(self, playbook):
        self._plays = list(playbook.get_plays())

    def v2_playbook_on_play_start(self, play):
        self._started += 1
        self._inventory = getattr(play.get_variable_manager(), "_inventory", None)  # pylint: disable=protected-access
        if self._inventory is not None and not self._clusters:
            for group in CLUSTER_GROUPS:
                if group in self._inventory.groups:
                    for host in self._inventory.groups[group].get_hosts():
                        self._clusters.setdefault(host.name, group)

    def _stopped_before(self):
        """host -> first play it had still to run when the run stopped early (a play that stops on any error failed)."""
        stopped = {}
        for play in self._plays[self._started:]:
            try:
                hosts = self._inventory.get_hosts(play.hosts) if self._inventory is not None else []
            except Exception:  # pylint: disable=broad-except  # a templated pattern: nothing to say about it
                hosts = []
            for host in hosts:
                stopped.setdefault(host.name, play.get_name())
        return stopped

    def _record(self, result, what):
        host = result._host.get_name()  # pylint: disable=protected-access
        task = result._task.get_name()  # pylint: disable=protected-access
        data = result._result  # pylint: disable=protected-access
        lines = [] if data.get("_ansible_no_log") else str(data.get("msg", "")).strip().splitlines()
        self._failed_at[host] = f"{what} at task '{task}'" + (f": {lines[0][:200]}" if lines else "")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._record(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        processed = set(stats.processed)
        clusters = [host for host in self._clusters if host in processed]
        if not clusters:
            return
        stopped = self._stopped_before()
        failed = [host for host in clusters if stats.failures.get(host) or stats.dark.get(host) or host in stopped]
        done = [host for host in clusters if host not in failed]
        left_out = [host for host in self._clusters if host not in processed]
        lines = [f"NGA4M clusters: {len(done)} of {len(clusters)} completed" + (f" ({', '.join(done)})" if done else "")]
        for host in failed:
            if stats.failures.get(host) or stats.dark.get(host):
                why = self._failed_at.get(host, "failed")
            else:
                why = f"not reached: the run ended before play '{stopped[host]}'"
            lines.append(f"  {host} ({self._clusters[host]}) did not converge: {why}")
        if left_out:
            lines.append(f"  not in this run (--limit): {', '.join(left_out)}")
        if failed:
            lines.append("  fix the cause and run it again: a re-run converges what is missing and changes nothing else")
        for line in lines:
            self._display.display(line, stderr=True)
