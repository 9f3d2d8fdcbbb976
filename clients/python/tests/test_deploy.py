"""The deployment files in deploy/ match what recr1d does."""

import configparser
import shutil
import subprocess

import pytest

import recr1

from conftest import REPO, recr1d_binary


def test_sample_config_is_accepted(start_daemon, ipc_address):
    # Every key of the sample is a real setting (unknown keys are refused); --listen overrides its path.
    start_daemon("--config", str(REPO / "deploy" / "recr1d.toml"), "--listen", ipc_address,
                 ready_address=ipc_address)
    with recr1.PolicyClient(ipc_address) as client:
        info = client.info()
    assert info.workers == 4
    assert info.limits.max_message_bytes == 16777216


def test_unit_is_type_notify_with_a_dedicated_user_and_state_directory():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(REPO / "deploy" / "recr1d.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["User"] == "recr1d"
    assert service["StateDirectory"] == "recr1d"
    assert service["RuntimeDirectory"] == "recr1d"
    assert service["ExecStart"].split()[1:] == ["serve", "--config", "/etc/recr1d/recr1d.toml"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    text = (REPO / "deploy" / "recr1d.service").read_text().replace("/usr/local/bin/recr1d", recr1d_binary())
    unit = tmp_path / "recr1d.service"
    unit.write_text(text)
    run = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (run.stdout + run.stderr).splitlines() if "recr1d.service" in line]
    assert problems == [], problems
