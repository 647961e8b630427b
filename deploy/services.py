"""The local service stack behind `make services` / `make services-down`: PostgreSQL, an MLflow
tracking server on it, an S3-compatible object store (moto's server) and Redis, all on
127.0.0.1, their files under .services/ in the checkout.

    python deploy/services.py up      # start what is not running, wait until each answers
    python deploy/services.py down    # stop each by the pid it was started with
    python deploy/services.py env     # print the environment that points the project at them

`up` writes .services/env.sh (source it) with the same environment. Ports come from
ML_ASSETS_PG_PORT, ML_ASSETS_MLFLOW_PORT, ML_ASSETS_S3_PORT and ML_ASSETS_REDIS_PORT.
Standard library only: it runs before anything is known to work.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".services"
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PG_PORT = int(os.environ.get("ML_ASSETS_PG_PORT", "15432"))
MLFLOW_PORT = int(os.environ.get("ML_ASSETS_MLFLOW_PORT", "15000"))
S3_PORT = int(os.environ.get("ML_ASSETS_S3_PORT", "15555"))
REDIS_PORT = int(os.environ.get("ML_ASSETS_REDIS_PORT", "16379"))
PG_USER = "ml_assets"
DATABASES = ("dagster", "mlflow")
DATA_BUCKET = "ml-assets"
MLFLOW_BUCKET = "ml-assets-mlflow"
# moto accepts any key; a real object store gets the team's own credentials instead.
S3_KEYS = {"AWS_ACCESS_KEY_ID": "ml-assets", "AWS_SECRET_ACCESS_KEY": "ml-assets"}
DEBIAN_PACKAGES = ("postgresql", "redis-server")
START_TIMEOUT_S = 90


def environment() -> dict[str, str]:
    """What points Dagster, MLflow and the asset data at the stack."""
    s3 = f"http://{HOST}:{S3_PORT}"
    return {
        "DAGSTER_HOME": str(STATE / "dagster_home"),
        "ML_ASSETS_DAGSTER_PG_URL": f"postgresql+psycopg2://{PG_USER}@{HOST}:{PG_PORT}/dagster",
        "MLFLOW_TRACKING_URI": f"http://{HOST}:{MLFLOW_PORT}",
        "ML_ASSETS_MLFLOW_UI": f"http://{HOST}:{MLFLOW_PORT}",
        "ML_ASSETS_DATA_DIR": f"s3://{DATA_BUCKET}/data",
        "AWS_ENDPOINT_URL": s3,
        "MLFLOW_S3_ENDPOINT_URL": s3,
        "AWS_DEFAULT_REGION": "us-east-1",
        **S3_KEYS,
        "ML_ASSETS_CELERY_BROKER": f"redis://{HOST}:{REDIS_PORT}/0",
        "ML_ASSETS_CELERY_BACKEND": f"redis://{HOST}:{REDIS_PORT}/1",
    }


def _log(message: str) -> None:
    print(f"services: {message}", flush=True)  # noqa: T201 (a command-line tool)


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _wait(what: str, ready, log: Path, proc: subprocess.Popen | None = None) -> None:  # noqa: ANN001
    """Until ``ready()``; fails at once when ``proc``, just started, has exited."""
    end = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < end:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log.exists() else "(no log)"
    raise SystemExit(f"services: {what} is not answering; log {log}:\n{tail}")


def _pid_alive(name: str) -> int | None:
    pid_file = STATE / f"{name}.pid"
    if not pid_file.exists():
        return None
    pid_text, _, program = pid_file.read_text().partition("\n")
    pid = int(pid_text)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        state, cmdline = "gone", ""
    # exited (a zombie has exited too), or the pid now belongs to another program
    if state in ("gone", "Z", "X") or (program and program not in cmdline):
        pid_file.unlink()
        return None
    return pid


def _ensure(
    name: str, port: int, argv: list[str], env: dict[str, str] | None = None
) -> subprocess.Popen | None:
    """Start ``name`` unless the process we started earlier is still alive; a port answered by
    anything else is an error (it would be adopted without being ours to stop)."""
    if _pid_alive(name) is not None:
        return None
    if _answers(port):
        raise SystemExit(
            f"services: port {port} ({name}) is in use by a process these services did not "
            f"start; stop it, or choose another port (ML_ASSETS_*_PORT, see {__file__})"
        )
    return _start(name, argv, env)


def _start(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A server in a session of its own, its pid kept for `down`."""
    log = STATE / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=STATE,
        )
    (STATE / f"{name}.pid").write_text(f"{proc.pid}\n{Path(argv[0]).name}")
    return proc


def _install_debian_packages() -> None:
    missing = [p for p in DEBIAN_PACKAGES if not _debian_installed(p)]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    _log(f"installing Debian packages {missing}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def _debian_installed(package: str) -> bool:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return out.returncode == 0 and "install ok installed" in out.stdout


def _pg_bin(tool: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise SystemExit("services: no PostgreSQL server under /usr/lib/postgresql")
    return str(versions[-1] / tool)


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, its tools run as the 'postgres' user."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(
    what: str, argv: list[str], log: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``argv``, failing with its own output (and the tail of ``log``) when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise SystemExit(
            f"services: {what} failed ({done.returncode}): {' '.join(argv)}\n"
            f"{done.stdout}{done.stderr}{tail}"
        )
    return done


PG_HOME = STATE / "postgres"  # owned by the server's user: its data directory and its log
PG_DATA = PG_HOME / "data"
PG_LOG = PG_HOME / "postgres.log"


def _postgres() -> None:
    if not (PG_DATA / "PG_VERSION").exists():
        PG_HOME.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(PG_HOME, "postgres", "postgres")  # only its own directory
            _run(
                "checking that the 'postgres' user can reach the checkout",
                _as_postgres(["test", "-w", str(PG_HOME)]),
            )
        initdb = [_pg_bin("initdb"), "-D", str(PG_DATA), "-U", PG_USER, "--auth=trust"]
        _run("initdb", _as_postgres([*initdb, "-E", "UTF8"]))
    if not _pg_running():
        # TCP on 127.0.0.1 only, no Unix socket (its path would depend on the checkout's).
        options = f"-p {PG_PORT} -c listen_addresses={HOST} -c unix_socket_directories=''"
        if _answers(PG_PORT):
            raise SystemExit(f"services: port {PG_PORT} (PostgreSQL) is in use by another server")
        pg_ctl = [_pg_bin("pg_ctl"), "-D", str(PG_DATA), "-l", str(PG_LOG), "-o", options]
        _run("starting PostgreSQL", _as_postgres([*pg_ctl, "-w", "start"]), PG_LOG)
    _wait("PostgreSQL", lambda: _answers(PG_PORT), PG_LOG)
    psql = [_pg_bin("psql"), "-h", HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", "postgres"]
    listed = _run("listing databases", [*psql, "-tAc", "SELECT datname FROM pg_database"])
    for db in DATABASES:
        if db not in listed.stdout.split():
            _run(f"creating database {db}", [*psql, "-qc", f"CREATE DATABASE {db}"])
    _log(f"PostgreSQL on {HOST}:{PG_PORT} (databases {', '.join(DATABASES)})")


def _pg_running() -> bool:
    """pg_ctl status: 0 running, 3 not running (a stale postmaster.pid included)."""
    if not (PG_DATA / "PG_VERSION").exists():
        return False
    status = [_pg_bin("pg_ctl"), "-D", str(PG_DATA), "status"]
    return subprocess.run(_as_postgres(status), capture_output=True).returncode == 0


def _reset_databases() -> None:
    """The object store keeps its buckets in memory: when it starts empty, the databases'
    records of runs, models and materializations point at files that are gone. Both start
    over, so that nothing refers to a missing artifact."""
    psql = [_pg_bin("psql"), "-h", HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", "postgres"]
    for db in DATABASES:
        _run(
            f"resetting database {db}", [*psql, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"]
        )
        _run(f"creating database {db}", [*psql, "-qc", f"CREATE DATABASE {db}"])
    _log(f"the object store started empty: databases {', '.join(DATABASES)} reset to match")


def _redis() -> None:
    (STATE / "redis").mkdir(exist_ok=True)
    argv = ["redis-server", "--bind", HOST, "--port", str(REDIS_PORT), "--save", ""]
    proc = _ensure(
        "redis", REDIS_PORT, [*argv, "--appendonly", "no", "--dir", str(STATE / "redis")]
    )
    _wait("Redis", lambda: _answers(REDIS_PORT), STATE / "redis.log", proc)
    _log(f"Redis on {HOST}:{REDIS_PORT}")


def _object_store() -> bool:
    """The S3 server and its buckets; True when it had none (a fresh, empty store)."""
    proc = _ensure("s3", S3_PORT, [str(BIN / "moto_server"), "-H", HOST, "-p", str(S3_PORT)])
    _wait("the S3 server", lambda: _answers(S3_PORT), STATE / "s3.log", proc)
    import boto3  # from the project's venv ([services] extra)

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{S3_PORT}",
        region_name="us-east-1",
        aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
    )
    have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in (DATA_BUCKET, MLFLOW_BUCKET):
        if bucket not in have:
            s3.create_bucket(Bucket=bucket)
    _log(f"S3 (moto) on {HOST}:{S3_PORT} (buckets {DATA_BUCKET}, {MLFLOW_BUCKET})")
    return not have


def mlflow_server_command() -> list[str]:
    """The tracking server: runs and registry in PostgreSQL, artifacts in the bucket, served
    through the server (clients need no object-store credentials)."""
    return [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"postgresql+psycopg2://{PG_USER}@{HOST}:{PG_PORT}/mlflow",
        "--artifacts-destination",
        f"s3://{MLFLOW_BUCKET}/artifacts",
        "--host",
        HOST,
        "--port",
        str(MLFLOW_PORT),
        "--workers",
        "2",
    ]


def _mlflow_health() -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{MLFLOW_PORT}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _mlflow() -> None:
    env = {k: v for k, v in environment().items() if k.startswith(("AWS_", "MLFLOW_S3"))}
    # The GenAI job runner (huey consumers) is not used by model training.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # uvicorn is looked up
    proc = _ensure("mlflow", MLFLOW_PORT, mlflow_server_command(), env)
    _wait("the MLflow server", _mlflow_health, STATE / "mlflow.log", proc)
    _log(f"MLflow server on http://{HOST}:{MLFLOW_PORT} (store PostgreSQL, artifacts S3)")


def create_dagster_storage(env: dict[str, str]) -> None:
    """The instance's tables, made once before any run: processes starting together on an
    empty database would race to create them."""
    code = "import dagster; dagster.DagsterInstance.get().get_runs(limit=1)"
    _run("creating the Dagster instance's tables", [str(BIN / "python"), "-c", code], None, env)


def _dagster_home() -> None:
    home = Path(environment()["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "deploy" / "team" / "dagster.yaml", home / "dagster.yaml")
    create_dagster_storage({**os.environ, **environment()})


def env_lines() -> list[str]:
    return [f"export {k}={shlex.quote(v)}" for k, v in environment().items()]


def _write_env() -> Path:
    path = STATE / "env.sh"
    header = "# source this file: the project's commands then use the services\n"
    path.write_text(header + "\n".join(env_lines()) + "\n")
    return path


def up() -> None:
    STATE.mkdir(exist_ok=True)
    _install_debian_packages()
    _postgres()
    _redis()
    if _object_store() and _pid_alive("mlflow") is None:
        _reset_databases()
    _mlflow()
    _dagster_home()
    _log(f"environment in {_write_env()} (source it)")


def _stop(name: str) -> None:
    pid = _pid_alive(name)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)  # its session: the server and any workers it forked
        end = time.monotonic() + 20
        while time.monotonic() < end and _pid_alive(name):
            time.sleep(0.2)
        if _pid_alive(name):
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended meanwhile
        pass
    (STATE / f"{name}.pid").unlink(missing_ok=True)
    _log(f"stopped {name} (pid {pid})")


def down() -> None:
    """Stop every service that is running; each one whatever happens to the others."""
    failed = []
    for name in ("mlflow", "s3", "redis"):
        try:
            _stop(name)
        except OSError as exc:
            failed.append(f"{name}: {exc}")
    if _pg_running():
        stop = [_pg_bin("pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "-w", "stop"]
        done = subprocess.run(_as_postgres(stop), capture_output=True, text=True)
        if done.returncode == 0:
            _log("stopped PostgreSQL")
        else:
            failed.append(f"PostgreSQL: {done.stderr.strip()}")
    if failed:
        raise SystemExit("services: could not stop " + "; ".join(failed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "env"])
    args = parser.parse_args(argv)
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    else:
        print("\n".join(env_lines()))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
