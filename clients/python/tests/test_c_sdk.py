"""The C SDK (clients/c) from Python: the RecZero example plugin as a real process, called with pynng in the
Python transport's envelope; the 30-line plugin of docs/c-sdk.md built against an installed copy of the
library; the shared library through ctypes; the header from C++."""

import ctypes
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import time

import pytest

from recr1.errors import Code, RecR1Error
from recr1.rewards import reczero as python_reczero
from recr1.transport import Channel
from recr1.v1 import envelope_pb2, reward_pb2

from conftest import REPO, free_port

C_DIR = REPO / "clients" / "c"
BUILD = C_DIR / "build"
METHOD = "recr1.v1.Reward/Reward"


@pytest.fixture(scope="module")
def built():
    """make -C clients/c: the libraries, recr1.pc and the example plugins."""
    for tool in ("make", "cc", "pkg-config"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/setup.sh installs the C toolchain's libraries)")
    run = subprocess.run(["make", "-C", str(C_DIR)], capture_output=True, text=True)
    assert run.returncode == 0, f"make failed:\n{run.stdout}\n{run.stderr}"
    return BUILD


class Plugin:
    """A plugin process, ready once a REQ socket can dial its address."""

    def __init__(self, argv, address, env=None):
        self.address = address
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {self.proc.returncode}: {self.proc.stdout.read()}")
            try:
                Channel(address).close()
                return
            except RecR1Error:
                if time.monotonic() > deadline:
                    self.proc.kill()
                    raise RuntimeError(f"{argv[0]} did not listen on {address}")
                time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def reward_call(address, items, *, token=None, method=METHOD, request_id=11):
    """One Reward request in the envelope the Python transport uses, sent raw; the decoded Reply."""
    request = reward_pb2.RewardRequest(items=[
        reward_pb2.RewardItem(id=f"item-{i}", prompt="Rate the item.", completion=completion, metadata_json=metadata)
        for i, (completion, metadata) in enumerate(items)])
    envelope = envelope_pb2.Request(method=method, request_id=request_id, timeout_ms=10000, auth_token=token or "",
                                    payload=request.SerializeToString())
    channel = Channel(address)
    try:
        return envelope_pb2.Reply.FromString(channel.roundtrip(envelope.SerializeToString(), 10))
    finally:
        channel.close()


def results_of(reply):
    assert reply.status.code == Code.OK, reply.status.message
    return reward_pb2.RewardReply.FromString(reply.payload).results


def well_formed(rate, user="likes sci-fi", item="a space opera", match="a good fit"):
    return (f"<analyze user>{user}</analyze user><analyze item>{item}</analyze item>"
            f"<match>{match}</match><rate>{rate}</rate>")


# --- the RecZero plugin ------------------------------------------------------------------------------

@pytest.fixture(params=["ipc", "tcp"])
def reczero(request, built, tmp_path):
    address = f"ipc://{tmp_path}/reczero.sock" if request.param == "ipc" else f"tcp://127.0.0.1:{free_port()}"
    plugin = Plugin([str(built / "reczero_reward"), address, "--workers", "2"], address)
    yield plugin
    assert plugin.stop() == 0  # SIGTERM stops it cleanly
    if request.param == "ipc":
        assert not (tmp_path / "reczero.sock").exists()


# Completions that walk the edges of RecZero's rule, each paired with a true rating.
COMPLETIONS = [
    (well_formed("4"), 4), (well_formed("3"), 4), (well_formed("1"), 5), (well_formed("4.5"), 4),
    (well_formed("+4."), 4), (well_formed(" 2 "), 3.5), (well_formed(".5"), 1), (well_formed("5"), 5.0),
    ("Let me think.\n" + well_formed("3").replace("><", ">\n<") + "\n", 4),
    (well_formed("4", match="  "), 4),                                     # a blank section
    ("<analyze user>u</analyze user><analyze item>i</analyze item><rate>4</rate>", 5),   # no <match>
    ("<analyze item>i</analyze item><analyze user>u</analyze user><match>m</match><rate>2</rate>", 4),
    ("<analyze user>u</analyze user><analyze item>i<match>m</match></analyze item><rate>4</rate>", 4),
    (well_formed("4") + "<rate>5</rate>", 4), (well_formed("4") + "</rate>", 4), (well_formed("7"), 4),
    (well_formed("0"), 4), (well_formed("four"), 4), (well_formed("4/5"), 4), (well_formed("0x4"), 4),
    (well_formed("1e0"), 4), (well_formed("nan"), 4), (well_formed("-4"), 4), (well_formed(""), 4),
    ("<rate><rate>4</rate>", 4), ("<analyze user>u</analyze user><analyze item>i</analyze item><match>m</match><rate>4", 4),
    ("I think 4 stars.", 4), ("", 4),
]


def test_reczero_rewards_agree_with_the_python_rule(reczero):
    reply = reward_call(reczero.address, [(c, json.dumps({"rating": t})) for c, t in COMPLETIONS])
    assert reply.request_id == 11
    results = results_of(reply)
    assert len(results) == len(COMPLETIONS)
    for (completion, truth), result in zip(COMPLETIONS, results):
        reward, details = python_reczero.score(completion, truth)
        assert result.has_reward, completion
        assert result.reward == pytest.approx(reward, abs=1e-6), completion
        assert dict(result.details) == details, completion
    # The values themselves, for the record.
    assert [round(r.reward, 4) for r in results[:5]] == [2.0, 1.5, 0.0, 1.75, 2.0]


def test_reczero_bad_metadata_fails_the_request(reczero):
    good = (well_formed("4"), '{"rating": 4}')
    for metadata, field in [("{}", "items[1].metadata.rating"), ('{"rating": "4"}', "items[1].metadata.rating"),
                            ("[4]", "items[1].metadata_json")]:
        reply = reward_call(reczero.address, [good, (well_formed("4"), metadata)])
        assert reply.status.code == Code.INVALID_ARGUMENT and reply.status.field == field, metadata
        assert reply.status.message.startswith(field)


def test_reczero_envelope_errors(reczero):
    channel = Channel(reczero.address)
    try:
        garbage = envelope_pb2.Reply.FromString(channel.roundtrip(b"\xff\xff\xff", 10))
    finally:
        channel.close()
    assert garbage.status.code == Code.INVALID_ARGUMENT and garbage.status.field == "envelope"
    unknown = reward_call(reczero.address, [("x", "{}")], method="recr1.v1.Policy/Info", request_id=12)
    assert unknown.status.code == Code.UNIMPLEMENTED and unknown.request_id == 12
    assert "recr1.v1.Policy/Info" in unknown.status.message
    not_json = reward_call(reczero.address, [(well_formed("4"), '{"rating": 4'), ("x", "{}")])
    assert not_json.status.code == Code.INVALID_ARGUMENT
    assert not_json.status.field == "items[0].metadata_json"
    assert not_json.status.message.startswith("items[0].metadata_json: not JSON")
    # Still serving after all that.
    assert results_of(reward_call(reczero.address, [(well_formed("4"), '{"rating": 4}')]))[0].reward == 2.0


def test_reczero_token_and_sigint(built, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    address = f"ipc://{tmp_path}/run/reczero.sock"  # a directory the plugin creates
    plugin = Plugin([str(built / "reczero_reward"), address, "--token-file", str(token_file)], address)
    try:
        missing = reward_call(address, [(well_formed("4"), '{"rating": 4}')])
        assert missing.status.code == Code.UNAUTHENTICATED and missing.status.field == "auth_token"
        wrong = reward_call(address, [(well_formed("4"), '{"rating": 4}')], token="s3cre")
        assert wrong.status.code == Code.UNAUTHENTICATED and "wrong token" in wrong.status.message
        # The Python transport's own call, with the token in the envelope.
        channel = Channel(address, token="s3cret")
        try:
            request = reward_pb2.RewardRequest(items=[
                reward_pb2.RewardItem(completion=well_formed("2"), metadata_json='{"rating": 4}')])
            reply = channel.call(METHOD, request, reward_pb2.RewardReply, 10)
        finally:
            channel.close()
        assert reply.results[0].reward == 1.0
        assert oct((tmp_path / "run").stat().st_mode & 0o777) == "0o700"
        assert oct((tmp_path / "run" / "reczero.sock").stat().st_mode & 0o777) == "0o600"
    finally:
        assert plugin.stop(signal.SIGINT) == 0
    assert f"listening on {address}" in plugin.proc.stdout.read()


def test_reczero_command_line_errors(built):
    usage = subprocess.run([str(built / "reczero_reward")], capture_output=True, text=True, timeout=10)
    assert usage.returncode == 2 and "usage" in usage.stderr
    bad = subprocess.run([str(built / "reczero_reward"), "nonsense://x"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr


# --- the docs' 30-line plugin, against an installed library ------------------------------------------

def docs_example():
    text = (REPO / "docs" / "c-sdk.md").read_text()
    section = text.split("## A reward plugin in 30 lines", 1)[1]
    return re.search(r"```c\n(.*?)```", section, re.S).group(1)


def test_docs_example_is_the_example_file():
    code = docs_example()
    assert code == (C_DIR / "examples" / "paris_reward.c").read_text()
    assert len(code.splitlines()) <= 32


def test_docs_example_builds_against_the_installed_library(built, tmp_path):
    prefix = tmp_path / "prefix"
    run = subprocess.run(["make", "-C", str(C_DIR), "install", f"PREFIX={prefix}"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for path in ("include/recr1.h", "include/recr1/v1/policy.pb-c.h", "lib/librecr1.a", "lib/librecr1.so",
                 "lib/pkgconfig/recr1.pc"):
        assert (prefix / path).exists(), path
    # No LD_LIBRARY_PATH: recr1.pc's rpath lets the program find the library at a custom prefix.
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    env.pop("LD_LIBRARY_PATH", None)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "recr1"], capture_output=True, text=True, env=env,
                           check=True).stdout.split()
    source = tmp_path / "paris_reward.c"
    source.write_text(docs_example())
    binary = tmp_path / "paris_reward"
    subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", str(source), "-o", str(binary), *flags],
                   check=True, env=env)
    linked = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env).stdout
    assert str(prefix / "lib" / "librecr1.so.0") in linked  # the installed shared library

    address = f"ipc://{tmp_path}/paris.sock"
    plugin = Plugin([str(binary), address], address, env=env)
    try:
        results = results_of(reward_call(address, [("It is Paris.", '{"target": "Paris"}'),
                                                   ("Lyon", '{"target": "Paris"}'), ("x", "{}")]))
        assert [r.reward for r in results[:2]] == [1.0, 0.0]
        assert results[0].details["length"] == len("It is Paris.")
        assert not results[2].has_reward and "target" in results[2].error
    finally:
        assert plugin.stop() == 0


# --- other languages ---------------------------------------------------------------------------------

def test_ctypes_calls_the_shared_library(built):
    lib = ctypes.CDLL(str(built / "librecr1.so"))
    lib.recr1_version.restype = ctypes.c_char_p
    lib.recr1_code_name.restype = ctypes.c_char_p
    lib.recr1_code_name.argtypes = [ctypes.c_int]
    lib.recr1_json_get_number.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_double)]
    assert lib.recr1_version() == b"0.1.0"
    assert lib.recr1_code_name(Code.UNAUTHENTICATED) == b"UNAUTHENTICATED"
    value = ctypes.c_double()
    assert lib.recr1_json_get_number(b'{"rating": 4.5}', b"rating", ctypes.byref(value)) == 0
    assert value.value == 4.5
    assert lib.recr1_json_get_number(b'{"rating": }', b"rating", ctypes.byref(value)) == Code.INVALID_ARGUMENT

    class Error(ctypes.Structure):  # recr1_error, as docs/c-sdk.md describes it
        _fields_ = [("code", ctypes.c_int), ("local", ctypes.c_int), ("retry_after_ms", ctypes.c_uint32),
                    ("request_id", ctypes.c_uint64), ("field", ctypes.c_char * 128), ("message", ctypes.c_char * 512)]

    err = Error()
    lib.recr1_json_check.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(Error)]
    assert lib.recr1_json_check(b"[1,", 3, ctypes.byref(err)) == Code.INVALID_ARGUMENT
    assert err.code == Code.INVALID_ARGUMENT and err.local == 1 and err.field == b"json"
    assert err.message.startswith(b"json: not JSON")


def test_cpp_includes_the_header(built, tmp_path):
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    source = tmp_path / "main.cpp"
    source.write_text(
        '#include <recr1.h>\n#include <cstdio>\n#include <memory>\n'
        'using info_ptr = std::unique_ptr<recr1_info_result, decltype(&recr1_info_result_free)>;\n'
        'int main() {\n'
        '    recr1_client *client = nullptr;\n'
        '    recr1_error err;\n'
        '    int status = recr1_client_open(&client, "ipc:///nonexistent/x.sock", nullptr, &err);\n'
        '    info_ptr info(nullptr, recr1_info_result_free);\n'
        '    std::printf("%s %s %d\\n", recr1_version(), recr1_code_name(status), err.local);\n'
        '    return client == nullptr ? 0 : 1;\n'
        '}\n')
    binary = tmp_path / "main"
    subprocess.run(["c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{C_DIR / 'include'}", str(source),
                    "-o", str(binary), str(built / "librecr1.a"), "-lnng", "-lprotobuf-c", "-lm", "-pthread"],
                   check=True)
    out = subprocess.run([str(binary)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.strip() == "0.1.0 UNAVAILABLE 1"


def test_a_training_job_scores_its_rollouts_through_the_c_plugin(built, tmp_path):
    """recr1d train with the RecZero plugin in C as its reward: every rollout gets a reward from C, and the
    plugin's details (format) reach the job's metrics."""
    address = f"ipc://{tmp_path}/reczero.sock"
    plugin = Plugin([str(built / "reczero_reward"), address, "--workers", "2"], address)
    try:
        prompt = ("Rate the movie Toy Story (1995) for a user who loved Aladdin (1992) and A Bug's Life (1998). "
                  "Answer with <rate>N</rate>, N from 1 to 5.")
        with open(tmp_path / "ratings.jsonl", "w") as f:
            for truth in (5, 4):
                f.write(json.dumps({"messages": [{"role": "user", "content": prompt}], "metadata": {"rating": truth}}) + "\n")
        (tmp_path / "job.toml").write_text(f'''name = "reczero-c"
prompts = "ratings.jsonl"
algorithm = "grpo"
steps = 2
prompts_per_step = 2
samples_per_prompt = 4
max_new_tokens = 16
learning_rate = 0.001

[[plugins]]
name = "reczero"
addresses = ["{address}"]
timeout_ms = 10000
''')
        recr1d = os.environ.get("RECR1D") or str(REPO / ".build" / "release" / "recr1d")
        run = subprocess.run([recr1d, "train", str(tmp_path / "job.toml"), "--listen", f"ipc://{tmp_path}/d.sock",
                              "--state-dir", str(tmp_path / "state"), "--seed", "5"],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        lines = [json.loads(line) for line in open(tmp_path / "state" / "jobs" / "reczero-c" / "metrics.jsonl")]
        assert [line["step"] for line in lines] == [1, 2]
        for line in lines:
            assert line["failed_items"] == 0, line          # the C plugin scored every rollout
            assert -1.0 <= line["reczero.format"] <= 1.0     # its details reach the job's metrics
            assert -1.0 <= line["reward_mean"] <= 2.0        # format ±1 plus accuracy in [0, 1]
            assert line["policy_version"] == line["step"]
    finally:
        plugin.stop()
