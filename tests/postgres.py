"""A throwaway PostgreSQL 15 cluster in a temporary folder on a free loopback port.

Uses the machine's PostgreSQL server binaries (``pg_config --bindir``); they are not on PATH.
initdb refuses to run as root, so when the tests run as root the cluster is owned by the
``postgres`` system user (created by Debian's PostgreSQL package).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    for guess in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (guess / "initdb").exists():
            return guess
    raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql-15")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as(user: str | None, argv: list[str]) -> None:
    cmd = ["runuser", "-u", user, "--", *argv] if user else argv
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a cluster, yield its SQLAlchemy URL (database ``koppel``), stop and remove it after."""
    bindir = _bindir()
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="koppel-pg-"))
    data = root / "data"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    try:
        _run_as(user, [str(bindir / "initdb"), "-D", str(data), "-U", "koppel", "--auth=trust", "-E", "UTF8"])
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        # -l: the server must not inherit our capture pipes, or communicate() waits for it forever.
        log = str(root / "server.log")
        _run_as(
            user, [str(bindir / "pg_ctl"), "-D", str(data), "-l", log, "-o", opts, "-w", "-t", "60", "start"]
        )
        _run_as(
            user, [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "koppel", "koppel"]
        )
        yield f"postgresql+psycopg://koppel@127.0.0.1:{port}/koppel"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run_as(user, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
