"""Database servers of the fault suite's own, in temporary directories.

The fault tests kill sessions, restart servers and take them down: never
the main servers (5432/3306). Each server here runs on a free port with its
data, socket and log in a temporary directory, and is removed at the end of
the session. A server that cannot be started fails the suite (never skips it).

- :class:`PostgresServer`: ``initdb`` + ``pg_ctl`` (binaries under
  ``/usr/lib/postgresql/*/bin``, or ``VINYL_FAULTS_PG_BIN``);
- :class:`MariaDBServer`: ``mariadb-install-db`` + ``mariadbd``;
- :class:`PgBouncer`: Debian's ``pgbouncer`` in transaction pooling mode, in
  front of a :class:`PostgresServer`.

PostgreSQL and pgbouncer refuse to run as root: as root they run as the
``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class ServerError(RuntimeError):
    """A fault-suite server could not be started (the suite fails)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, seconds: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    raise ServerError(f"{what} did not listen on port {port} within {seconds:.0f} s\n{tail}")


def _run(cmd: list[str], what: str, user: str | None = None, timeout: float = 120) -> None:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"{what} failed: {' '.join(cmd)}: {exc}") from exc
    if done.returncode != 0:
        raise ServerError(f"{what} failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")


def _unprivileged_user() -> str | None:
    """The user to run PostgreSQL/pgbouncer as: ``postgres`` when root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServerError("running as root and there is no 'postgres' user to run PostgreSQL as") from exc
    return "postgres"


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _pg_bin(name: str) -> str:
    configured = os.environ.get("VINYL_FAULTS_PG_BIN")
    candidates = [os.path.join(configured, name)] if configured else []
    candidates += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = shutil.which(name)
    if found:
        candidates.append(found)
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise ServerError(
        f"PostgreSQL's {name} was not found (looked in /usr/lib/postgresql/*/bin and PATH; "
        f"set VINYL_FAULTS_PG_BIN): install the postgresql package"
    )


class PostgresServer:
    """A PostgreSQL cluster of its own, started with :meth:`start`."""

    backend = "postgresql"

    def __init__(self, max_connections: int = 100) -> None:
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="vinyl-faults-pg-"))
        _chown(self.root, self.user)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.max_connections = max_connections
        _run(
            [_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            "initdb", self.user,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off "
            f"-c max_connections={self.max_connections} -c shared_buffers=32MB"
        )
        _run([_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60", "start"],
             "pg_ctl start", self.user)
        _wait_port(self.port, 30, "PostgreSQL", self.log)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as a crash would)."""
        _run([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], "pg_ctl stop", self.user)

    def create_database(self, name: str) -> None:
        _run([_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
              "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'], "CREATE DATABASE")

    def settings(self, name: str) -> dict:
        return {"HOST": "127.0.0.1", "PORT": str(self.port), "USER": "postgres", "PASSWORD": "", "NAME": name}

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except ServerError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)


class MariaDBServer:
    """A MariaDB instance of its own, started with :meth:`start`."""

    backend = "mysql"

    def __init__(self, max_connections: int = 150) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vinyl-faults-mariadb-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.socket = self.root / "mysqld.sock"
        self.port = free_port()
        self.max_connections = max_connections
        self.process: subprocess.Popen | None = None
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if install is None:
            raise ServerError("mariadb-install-db was not found: install the mariadb-server package")
        user = ["--user=root"] if os.geteuid() == 0 else []
        _run([install, "--no-defaults", f"--datadir={self.data}", "--auth-root-authentication-method=normal",
              "--skip-test-db", *user], "mariadb-install-db", timeout=180)

    def _daemon(self) -> str:
        found = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
        if not os.access(found, os.X_OK):
            raise ServerError("mariadbd was not found: install the mariadb-server package")
        return found

    def start(self) -> None:
        user = ["--user=root"] if os.geteuid() == 0 else []
        cmd = [
            self._daemon(), "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
            f"--socket={self.socket}", "--bind-address=127.0.0.1", f"--pid-file={self.root / 'mysqld.pid'}",
            f"--log-error={self.log}", f"--max-connections={self.max_connections}",
            "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=0",
            "--skip-log-bin", "--skip-name-resolve", "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci", *user,
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port(self.port, 60, "MariaDB", self.log)
        except ServerError:
            self.process.kill()
            raise

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: SIGKILL, as a crash would)."""
        if self.process is None:
            return
        if mode == "immediate":
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def create_database(self, name: str) -> None:
        client = shutil.which("mariadb") or shutil.which("mysql")
        if client is None:
            raise ServerError("the mariadb client was not found: install mariadb-client")
        _run([client, "--no-defaults", f"--socket={self.socket}", "-u", "root",
              "-e", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"], "CREATE DATABASE")

    def settings(self, name: str) -> dict:
        return {"HOST": "127.0.0.1", "PORT": str(self.port), "USER": "root", "PASSWORD": "", "NAME": name}

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PgBouncer:
    """pgbouncer in transaction pooling mode in front of ``server``."""

    backend = "postgresql"

    def __init__(self, server: PostgresServer, database: str, pool_size: int = 10) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.access(binary, os.X_OK):
            raise ServerError("pgbouncer was not found: install it (apt-get install -y pgbouncer)")
        self.binary = binary
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="vinyl-faults-pgbouncer-"))
        _chown(self.root, self.user)
        self.port = free_port()
        self.log = self.root / "pgbouncer.log"
        users = self.root / "users.txt"
        users.write_text('"postgres" ""\n')
        self.config = self.root / "pgbouncer.ini"
        self.config.write_text(
            "[databases]\n"
            f"{database} = host=127.0.0.1 port={server.port} dbname={database}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 500\n"
            f"logfile = {self.log}\npidfile = {self.root / 'pgbouncer.pid'}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            "admin_users = postgres\n"
        )
        for path in (users, self.config):
            _chown(path, self.user)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [self.binary, str(self.config)]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_port(self.port, 30, "pgbouncer", self.log)
        except ServerError:
            self.process.kill()
            raise

    def settings(self, name: str) -> dict:
        return {"HOST": "127.0.0.1", "PORT": str(self.port), "USER": "postgres", "PASSWORD": "", "NAME": name}

    def clients(self, database: str) -> int:
        """Client connections pgbouncer has open to ``database`` (its admin
        console's SHOW CLIENTS)."""
        done = subprocess.run(
            [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "pgbouncer",
             "-At", "-F", "|", "-c", "SHOW CLIENTS"],
            capture_output=True, text=True, timeout=30,
        )
        if done.returncode != 0:
            raise ServerError(f"pgbouncer SHOW CLIENTS failed: {done.stderr}")
        return sum(1 for line in done.stdout.splitlines() if line.split("|")[3:4] == [database])

    def destroy(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
