"""Throw-away database servers for the scale-out tests, in temp dirs, on free ports.

- :class:`PostgresReplicaSet`: a primary (``initdb``, ``wal_level=replica``)
  and a streaming replica made with ``pg_basebackup -R``.
- :class:`MariaDBReplicaSet`: two ``mariadbd`` instances, binlog on the
  primary, ``CHANGE MASTER TO ... MASTER_USE_GTID`` on the replica.
- :class:`GaleraCluster` (in ``tests/cluster``) builds on the same helpers.

Nothing here touches the suite's own servers (5432 / 3306): every server
listens on a port the kernel hands out as free, and its data lives in a
temp dir removed on :meth:`stop`. A server that does not start raises
:class:`ServerStartError` with its log, so the tests fail (never skip).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Ports the suite's own servers use: never handed out here.
RESERVED_PORTS = frozenset({5432, 3306})
START_TIMEOUT = 60.0


class ServerStartError(RuntimeError):
    """A throw-away server could not be started (its log is in the message)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def _as_user(user: str) -> list[str]:
    """Prefix a command so it runs as ``user`` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", user, "--"]


def _give_to(path: str, user: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT)
    if done.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise ServerStartError(
            f"{what} failed ({' '.join(cmd)}): exit {done.returncode}\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-2000:]}\n{tail}"
        )


def _wait_for_port(port: int, what: str, log: Path, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    tail = log.read_text()[-3000:] if log.exists() else "(no log)"
    raise ServerStartError(f"{what} did not listen on 127.0.0.1:{port}:\n{tail}")


def pg_bin(name: str) -> str:
    """The path of a PostgreSQL server program (``/usr/lib/postgresql/<v>/bin``)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise ServerStartError(f"{name} not found: install the PostgreSQL server (postgresql package)")
    return path


# -- PostgreSQL ---------------------------------------------------------------


class PostgresServer:
    """One PostgreSQL cluster in ``datadir``, run with ``pg_ctl``."""

    def __init__(self, datadir: Path, port: int, socket_dir: Path) -> None:
        self.datadir = datadir
        self.port = port
        self.socket_dir = socket_dir
        self.log = datadir.parent / f"{datadir.name}.log"

    def start(self, *options: str) -> None:
        opts = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c max_connections=60",
                "-c shared_buffers=16MB",
                *options,
            ]
        )
        _run(
            [*_as_user("postgres"), pg_bin("pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60",
             "-o", opts, "-l", str(self.log), "start"],
            f"starting PostgreSQL on port {self.port}",
            self.log,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop at once (``-m immediate``): the server is down for its clients."""
        subprocess.run(
            [*_as_user("postgres"), pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=START_TIMEOUT,
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-Atc", sql],
            capture_output=True, text=True, timeout=START_TIMEOUT,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql on port {self.port}: {done.stderr}")
        return done.stdout.strip()


class PostgresReplicaSet:
    """A PostgreSQL primary and one streaming replica (``pg_basebackup -R``)."""

    def __init__(self, database: str = "vinyl_scale") -> None:
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="vinyl-pg-replica-"))
        _give_to(str(self.root), "postgres")
        self.primary = PostgresServer(self.root / "primary", free_port(), self.root)
        self.replica = PostgresServer(self.root / "replica", free_port(), self.root)

    def start(self) -> PostgresReplicaSet:
        try:
            _run(
                [*_as_user("postgres"), pg_bin("initdb"), "-D", str(self.primary.datadir), "-U", "postgres",
                 "-A", "trust", "--no-sync", "-E", "UTF8"],
                "initdb of the primary",
            )  # fmt: skip
            self.primary.start("-c wal_level=replica", "-c max_wal_senders=5", "-c wal_keep_size=64MB")
            self.primary.psql(f"CREATE DATABASE {self.database}")
            _run(
                [*_as_user("postgres"), pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
                 "-U", "postgres", "-D", str(self.replica.datadir), "-R", "-X", "stream", "--no-sync",
                 "--checkpoint=fast"],
                "pg_basebackup of the replica",
            )  # fmt: skip
            self.replica.start("-c hot_standby=on")
        except BaseException:
            self.stop()
            raise
        if self.replica.psql("select pg_is_in_recovery()") != "t":
            self.stop()
            raise ServerStartError("the PostgreSQL replica is not in recovery: not a standby")
        return self

    def stop(self) -> None:
        self.replica.stop()
        self.primary.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# -- MariaDB ------------------------------------------------------------------


class MariaDBServer:
    """One ``mariadbd`` with its own datadir and port."""

    def __init__(self, root: Path, name: str, server_id: int, *options: str) -> None:
        self.root = root
        self.name = name
        self.datadir = root / name
        self.port = free_port()
        self.server_id = server_id
        self.options = list(options)
        self.log = root / f"{name}.err"
        self.proc: subprocess.Popen | None = None

    def install(self) -> None:
        _run(
            ["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            f"mariadb-install-db for {self.name}",
        )  # fmt: skip

    def command(self) -> list[str]:
        return [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd",
            "--no-defaults",
            "--user=mysql",
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.root / (self.name + '.sock')}",
            f"--pid-file={self.root / (self.name + '.pid')}",
            f"--log-error={self.log}",
            f"--server-id={self.server_id}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=100",
            *self.options,
        ]

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port, f"mariadbd {self.name}", self.log, self.proc)
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # the port opens a moment before root may log in
            try:
                self.sql("SELECT 1")
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Kill the server (SIGKILL): down at once for its clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=START_TIMEOUT)
        self.proc = None

    def sql(self, sql: str) -> str:
        done = subprocess.run(
            ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port), "-u", "root", "-N", "-B", "-e", sql],
            capture_output=True, text=True, timeout=START_TIMEOUT,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"mariadb on port {self.port}: {done.stderr}")
        return done.stdout.strip()


class MariaDBReplicaSet:
    """A MariaDB primary (binlog on) and a replica following it by GTID."""

    def __init__(self, database: str = "vinyl_scale", user: str = "vinyl") -> None:
        self.database = database
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="vinyl-mariadb-replica-"))
        _give_to(str(self.root), "mysql")
        self.primary = MariaDBServer(
            self.root, "primary", 1, f"--log-bin={self.root / 'primary-bin'}", "--binlog-format=ROW"
        )
        self.replica = MariaDBServer(self.root, "replica", 2, "--read-only", "--skip-slave-start")

    def start(self) -> MariaDBReplicaSet:
        try:
            self.primary.install()
            # The replica starts from a copy of the fresh datadir: no snapshot needed.
            shutil.copytree(self.primary.datadir, self.replica.datadir, symlinks=True)
            for path in self.replica.datadir.rglob("*"):
                _give_to(str(path), "mysql")
            _give_to(str(self.replica.datadir), "mysql")
            self.primary.start()
            self.replica.start()
            self.follow()
            # The application's user: root would write through --read-only.
            self.primary.sql(
                f"CREATE DATABASE {self.database}; CREATE USER '{self.user}'@'%'; "
                f"GRANT ALL ON {self.database}.* TO '{self.user}'@'%'"
            )
        except BaseException:
            self.stop()
            raise
        return self

    def follow(self) -> None:
        """Point the replica at the primary and start replicating."""
        self.replica.sql(
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.primary.port}, "
            f"MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, "
            f"MASTER_CONNECT_RETRY=1; START SLAVE"
        )

    def stop(self) -> None:
        self.replica.stop()
        self.primary.stop()
        shutil.rmtree(self.root, ignore_errors=True)


GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so"


class GaleraCluster:
    """Three MariaDB Galera nodes on this machine (Debian's ``galera-4``).

    Node 1 bootstraps the cluster (``--wsrep-new-cluster``); nodes 2 and 3
    join it by gcomm on free ports and receive its state (rsync SST).
    """

    def __init__(self, size: int = 3, database: str = "vinyl_cluster", user: str = "vinyl") -> None:
        if not os.path.exists(GALERA_PROVIDER):
            raise ServerStartError(
                f"{GALERA_PROVIDER} not found: install Debian's galera-4 "
                f"(apt-get install -y galera-4)"
            )
        self.database = database
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="vinyl-galera-"))
        _give_to(str(self.root), "mysql")
        gcomm = [free_port() for _ in range(size)]
        address = "gcomm://" + ",".join(f"127.0.0.1:{port}" for port in gcomm)
        self.nodes = []
        for index, port in enumerate(gcomm):
            provider = ";".join(
                [
                    f"gmcast.listen_addr=tcp://127.0.0.1:{port}",
                    f"ist.recv_addr=127.0.0.1:{free_port()}",
                    "gcache.size=32M",
                    "evs.suspect_timeout=PT3S",
                    "evs.inactive_timeout=PT5S",
                ]
            )
            self.nodes.append(
                MariaDBServer(
                    self.root, f"node{index + 1}", index + 1,
                    "--binlog-format=ROW", "--default-storage-engine=InnoDB",
                    "--innodb-autoinc-lock-mode=2", "--wsrep-on=ON",
                    f"--wsrep-provider={GALERA_PROVIDER}", "--wsrep-cluster-name=vinyl",
                    f"--wsrep-cluster-address={address}",
                    f"--wsrep-node-address=127.0.0.1:{port}",
                    f"--wsrep-provider-options={provider}",
                    "--wsrep-sst-method=rsync",
                    f"--wsrep-sst-receive-address=127.0.0.1:{free_port()}",
                )
            )  # fmt: skip
        self.nodes[0].options.append("--wsrep-new-cluster")

    def start(self) -> GaleraCluster:
        try:
            self.nodes[0].install()
            for node in self.nodes[1:]:
                shutil.copytree(self.nodes[0].datadir, node.datadir, symlinks=True)
                for path in [node.datadir, *node.datadir.rglob("*")]:
                    _give_to(str(path), "mysql")
            for node in self.nodes:
                node.start()
                self.wait_synced(node)
            size = self.nodes[0].sql("SHOW STATUS LIKE 'wsrep_cluster_size'").split()[-1]
            if size != str(len(self.nodes)):
                raise ServerStartError(f"the Galera cluster has {size} nodes, not {len(self.nodes)}")
            self.nodes[0].sql(
                f"CREATE DATABASE {self.database}; CREATE USER '{self.user}'@'%'; "
                f"GRANT ALL ON {self.database}.* TO '{self.user}'@'%'"
            )
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def wait_synced(node: MariaDBServer) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            state = node.sql("SHOW STATUS LIKE 'wsrep_local_state_comment'").split()[-1]
            if state == "Synced":
                return
            if time.monotonic() > deadline:
                raise ServerStartError(f"Galera {node.name} is {state}, not Synced:\n{node.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


__all__ = [
    "GaleraCluster",
    "MariaDBReplicaSet",
    "MariaDBServer",
    "PostgresReplicaSet",
    "PostgresServer",
    "ServerStartError",
    "free_port",
]
