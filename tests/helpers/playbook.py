"""Run ansible-playbook against this collection and read its results as JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".cache" / "collections"
# What a real API server says (Warning headers, which kubernetes.core returns as task warnings)
# when a request carries a field its schema does not have: the field is dropped. The tests make
# these fatal (field validation "Strict" in effect), see run_playbook(strict_api=...).
API_FIELD_WARNINGS = re.compile(r"unknown field|duplicate field|field not declared in schema")


class StrictApiError(AssertionError):
    """A playbook applied an object with a field the API server does not know (it was dropped)."""


def ensure_collection_tree() -> Path:
    """Link the repo at .cache/collections/ansible_collections/nga4m/platform (tools/collection-tree)."""
    out = subprocess.run([str(REPO / "tools" / "collection-tree")], capture_output=True, text=True, check=True)  # noqa: S603
    return Path(out.stdout.strip())


def ansible_env(extra: dict | None = None) -> dict:
    ensure_collection_tree()
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "PATH": bindir + os.pathsep + env.get("PATH", ""),
        }
    )
    env.update(extra or {})
    return env


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    data: dict = field(default_factory=dict)

    def results(self, task_name: str, host: str | None = None) -> list[dict]:
        """Every host result of every task called ``task_name``."""
        out = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                if task.get("task", {}).get("name") == task_name:
                    for hname, res in task.get("hosts", {}).items():
                        if host is None or hname == host:
                            out.append(res)
        return out

    def result(self, task_name: str, host: str | None = None) -> dict:
        found = self.results(task_name, host)
        if len(found) != 1:
            raise AssertionError(
                f"expected one result for task {task_name!r}, got {len(found)}\n{self.stdout[-4000:]}\n{self.stderr[-4000:]}"
            )
        return found[0]

    @property
    def stats(self) -> dict:
        return self.data.get("stats", {})

    def failures(self) -> list[str]:
        """Every failed host result as 'host: task: msg / stderr' (for assertion messages)."""
        out = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    if res.get("failed") or res.get("unreachable"):
                        items = [i for i in res.get("results") or [] if isinstance(i, dict) and i.get("failed")]
                        detail = "; ".join(str(i.get("msg") or i.get("stderr") or "")[:800] for i in items or [res])
                        out.append(f"{host}: {task.get('task', {}).get('name')}: {detail} {str(res.get('stderr') or '')[-800:]}")
        return out

    def changed_total(self) -> int:
        return sum(h.get("changed", 0) for h in self.stats.values())

    def api_field_warnings(self) -> list[str]:
        """Every task warning in which the API server reported a field it dropped, as 'host: task: warning'."""
        out = []
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                for host, res in task.get("hosts", {}).items():
                    found = list(res.get("warnings") or [])
                    for item in res.get("results") or []:
                        if isinstance(item, dict):
                            found += item.get("warnings") or []
                    out += [f"{host}: {task.get('task', {}).get('name')}: {w}" for w in found if API_FIELD_WARNINGS.search(str(w))]
        return out


def run_playbook(
    playbook,
    *,
    inventory="localhost,",
    extra_vars: dict | None = None,
    check: bool = False,
    diff: bool = False,
    env: dict | None = None,
    args: list | None = None,
    timeout: float = 900,
    strict_api: bool = True,
) -> PlaybookRun:
    """Run ``ansible-playbook`` and parse the ansible.posix.json callback output.

    With ``strict_api`` (the default) a run in which the API server dropped an unknown field of an
    object we applied raises ``StrictApiError``, naming the task and the field, whatever the run's
    exit code: a misspelled or misplaced field must fail the tests, not vanish silently.
    """
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", str(inventory)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    argv += list(args or [])
    proc = subprocess.run(  # noqa: S603 - argv built here
        argv, capture_output=True, text=True, env=ansible_env(env), timeout=timeout, cwd=str(REPO), check=False
    )
    data: dict = {}
    start = proc.stdout.find("{")
    if start >= 0:
        try:
            data = json.loads(proc.stdout[start:])
        except json.JSONDecodeError:
            data = {}
    run = PlaybookRun(proc.returncode, proc.stdout, proc.stderr, data)
    if strict_api and run.api_field_warnings():
        raise StrictApiError("the API server dropped fields of applied objects (strict field validation):\n"
                             + "\n".join(run.api_field_warnings()))
    return run
