"""Fixtures that run the real recr1d binary and real plugin processes."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

import recr1

REPO = pathlib.Path(__file__).resolve().parents[3]


def recr1d_binary():
    """$RECR1D, else the release build, else the debug build."""
    if os.environ.get("RECR1D"):
        return os.environ["RECR1D"]
    for config in ("release", "debug"):
        path = REPO / ".build" / config / "recr1d"
        if path.exists():
            return str(path)
    pytest.fail("recr1d is not built: run `swift build -c release` (or set RECR1D)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, args, env=None, cwd=None):
        self.log_path = pathlib.Path(cwd or ".") / "recr1d.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([recr1d_binary(), "serve", *args], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd)

    def wait_ready(self, address, token=None, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"recr1d exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with recr1.PolicyClient(address, timeout=2, token=token) as client:
                    client.health()
                    return self
            except (recr1.Unavailable, recr1.DeadlineExceeded):
                time.sleep(0.05)
        raise RuntimeError(f"recr1d did not answer on {address} within {timeout} s:\n{self.output()}")

    def output(self):
        self.log.flush()
        return self.log_path.read_text()

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def start_daemon(tmp_path):
    """start_daemon(*args, ready_address=...) -> Daemon, ready; every daemon is stopped after the test.
    Daemons run without a model (--model none) unless the arguments name one."""
    started = []

    def start(*args, ready_address=None, token=None, env=None):
        args = list(args)
        if "--model" not in args:
            args += ["--model", "none"]
        daemon = Daemon(args, env=env, cwd=tmp_path)
        started.append(daemon)
        if ready_address:
            daemon.wait_ready(ready_address, token=token)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def ipc_address(tmp_path):
    return f"ipc://{tmp_path}/run/recr1d.sock"


def start_plugin(script, address, tmp_path):
    """Runs a Python reward-plugin script in its own process and waits for its socket."""
    path = tmp_path / f"plugin_{abs(hash(script))}.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path), address], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = []   # serve_reward's "listening on ..." comes first, then the script's own "ready"
    while not seen or "ready" not in seen[-1]:
        seen.append(proc.stdout.readline())
        if not seen[-1]:
            proc.kill()
            raise RuntimeError(f"plugin did not start: {''.join(seen)}")
    return proc
