"""tls+tcp: recr1d listening with a certificate, and a training job calling a reward plugin over TLS
(verified against the plugin's CA; a wrong CA is a failed, counted call, never a crash)."""

import json
import shutil
import subprocess
import sys
import time

import pynng
import pytest

from recr1.v1 import envelope_pb2, policy_pb2

from conftest import Daemon, free_port, recr1d_binary


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Two self-signed certificates for localhost / 127.0.0.1 (openssl), each with its key in one PEM."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    made = {}
    for name in ("good", "other"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{directory}/{name}.key",
                        "-out", f"{directory}/{name}.crt", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        both = directory / f"{name}.pem"
        both.write_text((directory / f"{name}.crt").read_text() + (directory / f"{name}.key").read_text())
        made[name] = (directory / f"{name}.crt", both)
    return made


def client_config(cert):
    return pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, server_name="localhost", ca_string=cert.read_text(),
                           auth_mode=pynng.TLSConfig.AUTH_MODE_REQUIRED)


def test_recr1d_listens_on_tls(certificates, tmp_path):
    cert, both = certificates["good"]
    address = f"tls+tcp://127.0.0.1:{free_port()}"
    daemon = Daemon(["--model", "none", "--listen", address, "--tls-cert-key-file", str(both)], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with pynng.Req0(tls_config=client_config(cert), recv_timeout=3000, send_timeout=3000) as s:
                    s.dial(address, block=True)
                    s.send(envelope_pb2.Request(method="recr1.v1.Policy/Info", request_id=4).SerializeToString())
                    reply = envelope_pb2.Reply.FromString(s.recv())
                break
            except pynng.NNGException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert reply.status.code == 0 and reply.request_id == 4
        assert list(policy_pb2.InfoReply.FromString(reply.payload).listen) == [address]
        # A client that trusts another certificate does not get through.
        with pynng.Req0(tls_config=client_config(certificates["other"][0]), recv_timeout=1500, send_timeout=1500) as s:
            s.dial(address, block=False)
            with pytest.raises(pynng.NNGException):
                s.send(envelope_pb2.Request(method="recr1.v1.Policy/Info").SerializeToString())
                s.recv()
    finally:
        daemon.stop()


def test_tls_without_a_certificate_is_refused_by_name(tmp_path):
    run = subprocess.run([recr1d_binary(), "serve", "--model", "none", "--listen", f"tls+tcp://127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "tls_cert_key_file" in run.stderr


TLS_PLUGIN = '''
import sys, pynng, recr1
from recr1.reward import handle_reward_frame
key_file, address = sys.argv[1], sys.argv[2]
config = pynng.TLSConfig(pynng.TLSConfig.MODE_SERVER, cert_key_file=key_file)
def reward(items):
    return [1.0 if "apple" in item.completion.lower() else 0.0 for item in items]
with pynng.Rep0(tls_config=config, listen=address) as socket:
    print("ready", flush=True)
    while True:
        socket.send(handle_reward_frame(reward, socket.recv()))
'''


def test_a_job_calls_its_plugin_over_tls(certificates, tmp_path):
    cert, both = certificates["good"]
    plugin_address = f"tls+tcp://127.0.0.1:{free_port()}"
    script = tmp_path / "tls_plugin.py"
    script.write_text(TLS_PLUGIN)
    plugin = subprocess.Popen([sys.executable, str(script), str(both), plugin_address], stdout=subprocess.PIPE, text=True)
    try:
        assert "ready" in plugin.stdout.readline()
        with open(tmp_path / "prompts.jsonl", "w") as f:
            f.write(json.dumps({"messages": [{"role": "user", "content": "Name a fruit."}]}) + "\n")
        results = {}
        for name, ca in (("verified", cert), ("wrong-ca", certificates["other"][0])):
            (tmp_path / f"{name}.toml").write_text(f'''name = "{name}"
prompts = "prompts.jsonl"
steps = 1
prompts_per_step = 1
samples_per_prompt = 4
max_new_tokens = 6

[[plugins]]
name = "tls"
addresses = ["{plugin_address}"]
tls_ca_file = "{ca}"
tls_server_name = "localhost"
timeout_ms = 5000
retries = 0
''')
            run = subprocess.run([recr1d_binary(), "train", str(tmp_path / f"{name}.toml"), "--listen",
                                  f"ipc://{tmp_path}/{name}.sock", "--state-dir", str(tmp_path / "state")],
                                 capture_output=True, text=True, timeout=300)
            results[name] = run
        assert results["verified"].returncode == 0, results["verified"].stderr[-2000:]
        line = json.loads(open(tmp_path / "state" / "jobs" / "verified" / "metrics.jsonl").readline())
        assert line["failed_items"] == 0
        # A plugin whose certificate the job's CA does not verify fails the job before step 1.
        assert results["wrong-ca"].returncode == 1
        assert "pre-flight: reward plugin 'tls' did not answer" in results["wrong-ca"].stderr
        assert "job wrong-ca step 1/1" not in results["wrong-ca"].stderr
    finally:
        plugin.kill()
