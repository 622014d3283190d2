"""The deployment under test: Debian packages, PostgreSQL, Redis, the Nairi emulator and Airflow's components.

Every process is started in its own session (``start_new_session``) with its output in ``<out>/logs``, and
stopped by :meth:`Processes.stop_all` (SIGTERM to every process of its session, SIGKILL after a grace period),
whatever happened before.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PACKAGES = {
    "postgresql": lambda: bool(postgres_bin_dir()),
    "redis-server": lambda: bool(shutil.which("redis-server")),
    "chromium": lambda: bool(shutil.which("chromium")),
    "chromium-driver": lambda: bool(shutil.which("chromedriver")),
}


class E2EError(Exception):
    """A step of the harness failed (the message says which and where its log is)."""


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


def ensure_debian_packages() -> None:
    """``apt-get install`` what is missing (nothing to do, and no network, when everything is there)."""
    missing = [name for name, present in DEBIAN_PACKAGES.items() if not present()]
    if not missing:
        log("Debian packages present: " + ", ".join(DEBIAN_PACKAGES))
        return
    if os.geteuid() != 0:
        raise E2EError(f"missing Debian packages {missing}; run as root or install them")
    log(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    # The packages' scripts would start the system's PostgreSQL and Redis services: a policy-rc.d that denies
    # every start (Debian's documented way) keeps the machine as it was; the harness runs its own instances.
    policy = Path("/usr/sbin/policy-rc.d")
    deny_starts = not policy.exists()
    if deny_starts:
        policy.write_text("#!/bin/sh\n# written by scripts/e2e for one apt-get install\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    finally:
        if deny_starts:
            policy.unlink()


#: Called by every wait: raises E2EError when a component the harness relies on has died (set by Airflow).
watchdogs: list = []


def wait_until(what: str, check, timeout: float, interval: float = 0.5, log_file: Path | None = None):
    """Call ``check`` until it returns something truthy; E2EError naming ``what`` (and a log) on timeout.
    An E2EError raised by ``check`` ends the wait at once; other exceptions are retried."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        for watchdog in watchdogs:
            watchdog()
        try:
            result = check()
        except E2EError:
            raise  # the check knows it cannot succeed any more
        except Exception as exc:  # a connection refused while a component starts...: try again
            last_error, result = exc, None
        if result:
            return result
        time.sleep(interval)
    hint = f"; see {log_file}" if log_file else ""
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise E2EError(f"{what}: not within {timeout:.0f} s{detail}{hint}")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_file: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def session_pids(self) -> list[int]:
        """Every live process of this process's session (its children included, however deep)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                # The command name (field 2) may hold spaces: split after its closing parenthesis.
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == self.pid:  # field 6, the session id
                    pids.append(int(stat.parent.name))
        return pids

    def signal(self, sig: int) -> None:
        for pid in self.session_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Processes:
    """The processes the harness started; each in its own session, logged to ``<logs>/<name>.log``."""

    logs: Path
    running: list[Process] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        self.counts[name] = self.counts.get(name, 0) + 1
        suffix = "" if self.counts[name] == 1 else f"-{self.counts[name]}"
        log_file = self.logs / f"{name}{suffix}.log"
        with log_file.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        process = Process(name, popen, log_file)
        self.running.append(process)
        return process

    def kill(self, process: Process, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process of its session (SIGKILL: a crash, nothing gets to clean up)."""
        process.signal(sig)
        if sig == signal.SIGKILL:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=10)

    def stop(self, process: Process, grace: float = 15.0) -> None:
        process.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (process.alive() or process.session_pids()):
            time.sleep(0.2)
        process.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=5)
        if process in self.running:
            self.running.remove(process)

    def stop_all(self) -> None:
        """Stop in reverse start order (Airflow before its databases)."""
        for process in reversed(list(self.running)):
            self.stop(process)


@dataclass
class Postgres:
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"


def start_postgres(processes: Processes, work: Path) -> Postgres:
    """A throw-away cluster in ``work`` owned by ``postgres`` (PostgreSQL refuses to run as root); trust auth
    on loopback only."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise E2EError("PostgreSQL is not installed")
    data = work / "pgdata"
    data.mkdir(mode=0o700)
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
        shutil.chown(data, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *as_postgres,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "airflow",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    process = processes.start(
        "postgres",
        [
            *as_postgres,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(work),
            "-c",
            "max_connections=200",
            "-c",
            "fsync=off",
        ],
    )
    psql = [str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "-d", "postgres"]
    wait_until(
        "PostgreSQL accepts connections",
        lambda: subprocess.run([*psql, "-c", "select 1"], capture_output=True, check=False).returncode == 0,
        60,
        log_file=process.log_file,
    )
    subprocess.run([*psql, "-q", "-c", "create database airflow"], check=True)
    log(f"PostgreSQL on 127.0.0.1:{port}")
    return Postgres(port, data)


def start_redis(processes: Processes, work: Path) -> str:
    port = free_port()
    process = processes.start(
        "redis",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=work,
    )

    def answers() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_until("Redis answers PING", answers, 30, log_file=process.log_file)
    log(f"Redis on 127.0.0.1:{port}")
    return f"redis://127.0.0.1:{port}/0"


@dataclass
class Emulator:
    base_url: str
    admin_url: str
    admin_token: str
    api_key: str


def start_emulator(processes: Processes, venv_bin: Path, state_dir: Path) -> Emulator:
    port = free_port()
    key = f"nr_e2e_{secrets.token_hex(16)}"
    token = secrets.token_hex(16)
    process = processes.start(
        "emulator",
        [
            str(venv_bin / "nairi-emulator"),
            "--port",
            str(port),
            "--key",
            f"{key}:read,write",
            "--admin-token",
            token,
            "--state-dir",
            str(state_dir),
            # Turns of 6 s: shorter deferrals meet an Airflow 3.3.2 scheduler race more often (docs/e2e.md).
            "--turn-latency",
            "6",
            "--video-delay",
            "20",
        ],
    )
    origin = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{origin}/api/public/v1/me", timeout=1)
        except urllib.error.HTTPError:
            return True  # 401 without a key: it is up
        return True

    wait_until("the Nairi emulator answers", answers, 60, log_file=process.log_file)
    log(f"Nairi emulator on {origin} (state: {state_dir})")
    return Emulator(f"{origin}/api/public/v1", f"{origin}/_admin", token, key)


#: ``E2E_TRIGGERER_LOG_LEVEL=DEBUG``: the triggerer alone logs at that level (the trigger logs then show the
#: provider's DEBUG lines: each poll, how long the connection read took).
TRIGGERER_LOG_LEVEL = os.environ.get("E2E_TRIGGERER_LOG_LEVEL", "")


@dataclass
class Airflow:
    """Airflow 3's components as separate processes sharing one environment (config by variables only)."""

    processes: Processes
    venv_bin: Path
    home: Path
    env: dict[str, str]
    api_port: int
    components: dict[str, Process] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def cli(self, *args: str, timeout: float = 300) -> None:
        log_file = self.processes.logs / f"airflow-{args[0]}-{args[1] if len(args) > 1 else ''}.log"
        with log_file.open("ab") as out:
            result = subprocess.run(
                [str(self.venv_bin / "airflow"), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if result.returncode:
            raise E2EError(f"airflow {' '.join(args)} exited {result.returncode}; see {log_file}")

    def start(self, component: str, *args: str) -> Process:
        name = component.replace(" ", "-")
        env = self.env
        if component == "triggerer" and TRIGGERER_LOG_LEVEL:
            env = {**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": TRIGGERER_LOG_LEVEL}
        process = self.processes.start(name, [str(self.venv_bin / "airflow"), *component.split(), *args], env)
        self.components[name] = process
        return process

    def stop(self, name: str) -> None:
        self.processes.stop(self.components.pop(name))

    def start_api_server(self) -> None:
        process = self.start(
            "api-server", "--port", str(self.api_port), "--host", "127.0.0.1", "--workers", "1"
        )

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=2) as answer:
                return answer.status == 200

        wait_until("the api-server answers /api/v2/monitor/health", healthy, 180, 1, process.log_file)

    def check_alive(self) -> None:
        """E2EError naming the first component that exited, with the end of its log."""
        for name, process in self.components.items():
            if not process.alive():
                tail = process.log_file.read_text(errors="replace").splitlines()[-15:]
                raise E2EError(
                    f"airflow {name} exited {process.popen.returncode}; see {process.log_file}:\n"
                    + "\n".join(tail)
                )

    def stop_components(self) -> None:
        for name in reversed(list(self.components)):
            self.stop(name)


def airflow_env(
    *,
    home: Path,
    task_logs: Path,
    database_url: str,
    broker_url: str,
    api_port: int,
    dag_folders: dict[str, Path],
) -> dict[str, str]:
    """Configuration of every component; the executor is set per phase (``AIRFLOW__CORE__EXECUTOR``)."""
    from cryptography.fernet import Fernet  # noqa: PLC0415 (from the e2e venv, an Airflow dependency)

    bundles = [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path), "refresh_interval": 0},
        }
        for name, path in dag_folders.items()
    ]
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "HOME", "UV_CACHE_DIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url.replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            # One retry, at once, as a deployment would have: a task Airflow 3.3.2's scheduler fails on a late
            # executor report is retried (and reattaches); the harness accepts only that cause (docs/e2e.md).
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            # Faults are detected in seconds, not minutes: a dead worker's task, a dead triggerer's triggers.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(task_logs),
        }
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env
