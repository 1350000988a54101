"""A real MariaDB server (Debian's mariadb-server) on loopback, in a temporary datadir."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.helpers.procs import ManagedProcess, free_port

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db") or "/usr/bin/mysql_install_db"


class MariaDB:
    """A real MariaDB server on 127.0.0.1:<free port> in a temporary datadir."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.datadir = workdir / "mariadb"
        self.socket = workdir / "mariadb.sock"
        self.datadir.mkdir()
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(  # noqa: S603 - fixed argv
            [INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}", *user,
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )
        self.proc = ManagedProcess(
            [MARIADBD, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", *user, "--skip-log-bin",
             f"--pid-file={workdir / 'mariadb.pid'}", "--innodb-buffer-pool-size=32M",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin"],
            log_path=workdir / "mariadb.log",
        )
        self._wait()

    def _wait(self, timeout: float = 60.0) -> None:
        import pymysql  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while True:
            if not self.proc.alive():
                raise RuntimeError(f"mariadbd exited early:\n{self.proc.log_text()[-3000:]}")
            try:
                pymysql.connect(unix_socket=str(self.socket), user="root").close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not answer within {timeout}s:\n{self.proc.log_text()[-3000:]}") from None
                time.sleep(0.2)

    def create_database(self, database: str, user: str, password: str) -> None:
        """What the MySQL image's entrypoint does for MYSQL_DATABASE / MYSQL_USER / MYSQL_PASSWORD."""
        import pymysql  # noqa: PLC0415

        conn = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
                cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.stop(timeout=30)
