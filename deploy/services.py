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


def _wait(what: str, ready, log: Path, name: str | None = None) -> None:  # noqa: ANN001
    """Until ``ready()``; fails at once when the process started as ``name`` has exited."""
    end = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < end:
        if ready():
            return
        if name is not None and _pid_alive(name) is None:
            break
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log.exists() else "(no log)"
    raise SystemExit(f"services: {what} is not answering; log {log}:\n{tail}")


def _pid_alive(name: str) -> int | None:
    pid_file = STATE / f"{name}.pid"
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text())
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = "gone"
    if state in ("gone", "Z", "X"):  # exited (a zombie has exited too)
        pid_file.unlink()
        return None
    return pid


def _start(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
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
    (STATE / f"{name}.pid").write_text(str(proc.pid))


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


def _postgres() -> None:
    data = STATE / "postgres"
    log = STATE / "postgres.log"
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
            shutil.chown(STATE, "postgres", "postgres")
        initdb = [_pg_bin("initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust"]
        subprocess.run(_as_postgres([*initdb, "-E", "UTF8"]), check=True, capture_output=True)
    if not _answers(PG_PORT):
        options = f"-p {PG_PORT} -c listen_addresses={HOST} -k {data}"
        start = [_pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]
        subprocess.run(_as_postgres(start), check=True, capture_output=True)
    _wait("PostgreSQL", lambda: _answers(PG_PORT), log)
    psql = [_pg_bin("psql"), "-h", HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", "postgres"]
    listed = subprocess.run(
        [*psql, "-tAc", "SELECT datname FROM pg_database"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for db in DATABASES:
        if db not in listed:
            subprocess.run([*psql, "-qc", f"CREATE DATABASE {db}"], check=True)
    _log(f"PostgreSQL on {HOST}:{PG_PORT} (databases {', '.join(DATABASES)})")


def _redis() -> None:
    if not _answers(REDIS_PORT):
        (STATE / "redis").mkdir(exist_ok=True)
        argv = ["redis-server", "--bind", HOST, "--port", str(REDIS_PORT), "--save", ""]
        _start("redis", [*argv, "--appendonly", "no", "--dir", str(STATE / "redis")])
    _wait("Redis", lambda: _answers(REDIS_PORT), STATE / "redis.log", "redis")
    _log(f"Redis on {HOST}:{REDIS_PORT}")


def _object_store() -> None:
    if not _answers(S3_PORT):
        _start("s3", [str(BIN / "moto_server"), "-H", HOST, "-p", str(S3_PORT)])
    _wait("the S3 server", lambda: _answers(S3_PORT), STATE / "s3.log", "s3")
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
    if not _mlflow_health():
        env = {k: v for k, v in environment().items() if k.startswith(("AWS_", "MLFLOW_S3"))}
        # The GenAI job runner (huey consumers) is not used by model training.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # uvicorn is looked up
        _start("mlflow", mlflow_server_command(), env)
    _wait("the MLflow server", _mlflow_health, STATE / "mlflow.log", "mlflow")
    _log(f"MLflow server on http://{HOST}:{MLFLOW_PORT} (store PostgreSQL, artifacts S3)")


def _dagster_home() -> None:
    home = Path(environment()["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "deploy" / "team" / "dagster.yaml", home / "dagster.yaml")


def _write_env() -> Path:
    path = STATE / "env.sh"
    lines = [f"export {k}={v}" for k, v in environment().items()]
    path.write_text("# source this file: the project's commands then use the services\n")
    with path.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def up() -> None:
    STATE.mkdir(exist_ok=True)
    _install_debian_packages()
    _postgres()
    _redis()
    _object_store()
    _mlflow()
    _dagster_home()
    _log(f"environment in {_write_env()} (source it)")


def _stop(name: str) -> None:
    pid = _pid_alive(name)
    if pid is None:
        return
    os.killpg(pid, signal.SIGTERM)  # its session: the server and any workers it forked
    end = time.monotonic() + 20
    while time.monotonic() < end and _pid_alive(name):
        time.sleep(0.2)
    if _pid_alive(name):
        os.killpg(pid, signal.SIGKILL)
    (STATE / f"{name}.pid").unlink(missing_ok=True)
    _log(f"stopped {name} (pid {pid})")


def down() -> None:
    for name in ("mlflow", "s3", "redis"):
        _stop(name)
    data = STATE / "postgres"
    if (data / "postmaster.pid").exists():
        stop = [_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres(stop), check=True, capture_output=True)
        _log("stopped PostgreSQL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "env"])
    args = parser.parse_args(argv)
    if args.command == "up":
        up()
    elif args.command == "down":
        down()
    else:
        print("\n".join(f"export {k}={v}" for k, v in environment().items()))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
