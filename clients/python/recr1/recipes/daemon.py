"""Starting and stopping the recr1d a recipe trains: the binary, its TOML settings and its state directory
under the run's output folder.

The binary is $RECR1D, else `recr1d` on PATH, else the release build of this source tree
(<repo>/.build/release/recr1d)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

from recr1.client import PolicyClient
from recr1.errors import DeadlineExceeded, Unavailable

IPC_PATH_MAX = 100   # sockaddr_un holds 108 bytes with the terminator; keep a margin


class DaemonError(RuntimeError):
    """recr1d could not be found, did not start, or stopped answering."""


def source_tree():
    """The recr1 source tree this package was installed from in place (pip install -e), found by walking
    up to the folder that holds both Package.swift and clients/python; None for an installed package."""
    for folder in pathlib.Path(__file__).resolve().parents:
        if (folder / "Package.swift").is_file() and (folder / "clients" / "python").is_dir():
            return folder
    return None


def find_binary(explicit=None):
    """The recr1d to run: explicit, else $RECR1D, else `recr1d` on PATH, else the release build."""
    for source, candidate in (("--recr1d", explicit), ("$RECR1D", os.environ.get("RECR1D"))):
        if candidate:
            if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
                raise DaemonError(f"{source}: {candidate} is not an executable file")
            return candidate
    on_path = shutil.which("recr1d")
    if on_path:
        return on_path
    tree = source_tree()
    built = tree / ".build" / "release" / "recr1d" if tree else None
    if built and built.is_file():
        return str(built)
    raise DaemonError("recr1d not found: set RECR1D=/path/to/recr1d, put recr1d on PATH, or build it "
                      "(bash scripts/build.sh)")


def folders_of(*paths):
    """The folders holding these checkpoint paths (None and "" left out), for LocalDaemon's allowed_dirs."""
    return [str(pathlib.Path(p).resolve().parent) for p in paths if p]


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))   # a TOML basic string: JSON's escapes are TOML's


_SCHEMAS = {}


def settings_schema(binary=None):
    """The settings a recr1d accepts, from `recr1d config --schema` (declared once, in
    Sources/RecR1Service/ServerSettings.swift): key -> {"type", "minimum"/"maximum" or "choices", "default",
    "help", "flag"}. Read once per binary."""
    binary = find_binary(binary)
    if binary not in _SCHEMAS:
        try:
            run = subprocess.run([binary, "config", "--schema"], capture_output=True, text=True, timeout=120)
        except OSError as exc:
            raise DaemonError(f"{binary} config --schema: {exc}") from None
        if run.returncode != 0:
            raise DaemonError(f"{binary} config --schema failed ({run.returncode}): {run.stderr.strip()[-400:]}")
        _SCHEMAS[binary] = {entry["key"]: entry for entry in json.loads(run.stdout)}
    return _SCHEMAS[binary]


def _unknown(key, schema):
    return ValueError(f"--set: unknown recr1d setting '{key}' (known: {', '.join(sorted(schema))})")


def check_setting(key, value, schema):
    """value, when it is of the setting's type and within its range or choices; else a ValueError naming it."""
    entry = schema.get(key)
    if entry is None:
        raise _unknown(key, schema)
    kind = entry["type"]
    if kind == "array":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"--set: {key} takes a list of strings, got {value!r}")
        return list(value)
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "integer" and not isinstance(value, int)):
            raise ValueError(f"--set: {key} takes a{'n integer' if kind == 'integer' else ' number'}, got {value!r}")
        if not entry["minimum"] <= value <= entry["maximum"]:
            raise ValueError(f"--set: {key} is {value}, outside {entry['minimum']}...{entry['maximum']}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"--set: {key} takes a string, got {value!r}")
    if "choices" in entry and value not in entry["choices"]:
        raise ValueError(f"--set: {key} is '{value}', not one of {', '.join(entry['choices'])}")
    return value


def toml_text(settings, schema):
    lines = ["# Written by `recr1 run`: the settings of the recr1d this run trains."]
    for name, value in settings.items():
        if value is None:
            continue
        lines.append(f"{name} = {toml_value(check_setting(name, value, schema))}")
    return "\n".join(lines) + "\n"


def parse_setting(text, schema):
    """"KEY=VALUE" -> (key, value typed and checked as the schema declares the setting)."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ValueError(f"--set: KEY=VALUE, got '{text}'")
    entry = schema.get(key)
    if entry is None:
        raise _unknown(key, schema)
    raw = raw.strip()
    kind = entry["type"]
    try:
        if kind == "integer":
            value = int(raw)
        elif kind == "number":
            value = float(raw)
        elif kind == "array":
            value = [part.strip() for part in raw.split(",") if part.strip()]
        else:
            value = raw
    except ValueError:
        raise ValueError(f"--set: {key} takes a{'n integer' if kind == 'integer' else ' number'}, got '{raw}'") from None
    return key, check_setting(key, value, schema)


class LocalDaemon:
    """A recr1d child process with its own config file, state directory and log, under folder.

        with LocalDaemon(folder, {"seed": 1, "learning_rate": 5e-4}) as daemon:
            client = daemon.client()"""

    def __init__(self, folder, settings, binary=None, ready_timeout=180.0, log=None, allowed_dirs=()):
        """allowed_dirs: folders beyond the state dir whose checkpoints the caller saves or loads (recr1d
        refuses request paths outside its state dir and these)."""
        self.folder = pathlib.Path(folder)
        self.settings = dict(settings)
        extra = [str(pathlib.Path(d).resolve()) for d in allowed_dirs]
        given = list(self.settings.get("allowed_dirs") or [])
        if extra or given:
            self.settings["allowed_dirs"] = given + [d for d in extra if d not in given]
        self.binary = find_binary(binary)
        self.ready_timeout = ready_timeout
        self.log = log or (lambda message: None)
        self.config_path = self.folder / "recr1d.toml"
        self.state_dir = self.folder / "state"
        self.log_path = self.folder / "recr1d.log"
        socket_path = self.folder / "recr1d.sock"
        self._socket_dir = None
        if len(str(socket_path.resolve())) > IPC_PATH_MAX:
            self._socket_dir = tempfile.mkdtemp(prefix="recr1-run-")
            socket_path = pathlib.Path(self._socket_dir) / "recr1d.sock"
        self.address = f"ipc://{socket_path.resolve()}"
        self.process = None
        self._log_file = None

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(toml_text(self.settings, settings_schema(self.binary)))
        command = [self.binary, "serve", "--listen", self.address, "--config", str(self.config_path),
                   "--state-dir", str(self.state_dir)]
        self.log(f"starting {' '.join(command)}  (log: {self.log_path})")
        self._log_file = open(self.log_path, "w")
        started = time.monotonic()
        self.process = subprocess.Popen(command, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        deadline = started + self.ready_timeout
        while True:
            if self.process.poll() is not None:
                raise DaemonError(f"recr1d exited with status {self.process.returncode} before serving; "
                                  f"its log ({self.log_path}):\n{self.log_tail()}")
            try:
                with PolicyClient(self.address, timeout=2) as client:
                    client.health()
                break
            except (Unavailable, DeadlineExceeded):
                if time.monotonic() > deadline:
                    self.stop()
                    raise DaemonError(f"recr1d did not answer on {self.address} within {self.ready_timeout:.0f} s; "
                                      f"its log:\n{self.log_tail()}") from None
                time.sleep(0.1)
        self.log(f"recr1d ready on {self.address} in {time.monotonic() - started:.1f} s")
        return self

    def client(self, timeout=3600.0):
        return PolicyClient(self.address, timeout=timeout)

    def log_tail(self, lines=20):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout=30.0):
        """SIGTERM, then SIGKILL after timeout seconds; returns the exit status (None if never started)."""
        status = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            status = self.process.returncode
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        return status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
