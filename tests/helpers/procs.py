"""Start and stop local server processes for tests (loopback only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers with a non-5xx status, or fail loudly."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = exc
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last}")


def wait_file(path, proc: "ManagedProcess", timeout: float = 60.0) -> None:
    """Wait until ``proc`` has written ``path`` (e.g. a server's state file), or fail with its log."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if not proc.alive():
            raise RuntimeError(f"{proc.argv[1] if len(proc.argv) > 1 else proc.argv[0]} exited early ({proc.proc.returncode}) "
                               f"before writing {path}:\n{proc.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} not written within {timeout}s:\n{proc.log_text()[-3000:]}")
        time.sleep(0.1)


class ManagedProcess:
    """A child process in its own process group, killed with its children on stop()."""

    def __init__(self, argv, log_path=None, env=None, cwd=None):
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(  # noqa: S603 - argv built by tests
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=timeout)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()

    def log_text(self) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
