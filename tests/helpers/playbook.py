"""Run ansible-playbook against this collection and read its results as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".cache" / "collections"


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

    def changed_total(self) -> int:
        return sum(h.get("changed", 0) for h in self.stats.values())


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
) -> PlaybookRun:
    """Run ``ansible-playbook`` and parse the ansible.posix.json callback output."""
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
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, data)
