"""Training jobs: StartJob / JobStatus / StopJob and `recr1d train`, with reward plugins as real processes.

The plugin fault matrix: one that crashes behind a second address (the job goes on and counts the
failures); one that hangs past its deadline or answers garbage bytes (the pre-flight fails the job, naming
it); one that answers the wrong number of rewards, None or NaN (the step fails the job past
max_failed_fraction, or is skipped and says so). A daemon killed in the middle of a job resumes it from its
last checkpoint and loses no completed step."""

import json
import os
import signal
import subprocess
import time

import pytest

import recr1

from conftest import Daemon, free_port, recr1d_binary, start_plugin

PLUGIN = '''
import os, sys, threading, time, recr1

MODE = os.environ.get("PLUGIN_MODE", "good")
calls = [0]

def reward(items):
    calls[0] += 1
    if MODE == "crash" and calls[0] >= 2:
        os._exit(3)
    if MODE == "hang":
        time.sleep(30)
    if MODE == "wrong-count":
        return [1.0]
    if MODE == "none":
        return [None for _ in items]
    if MODE == "nan":
        return [float("nan") for _ in items]
    # "apple" in the completion, as the metadata asks.
    return [(1.0 if item.metadata["word"] in item.completion.lower() else 0.0, {"length": len(item.completion)})
            for item in items]

ready = threading.Event()
threading.Thread(target=lambda: (ready.wait(), print("ready", flush=True)), daemon=True).start()
recr1.serve_reward(reward, sys.argv[1], workers=2, ready_event=ready)
'''


# A "plugin" that answers every request with bytes that are no Reply envelope.
GARBAGE = '''
import sys, pynng
sock = pynng.Rep0(listen=sys.argv[1])
print("ready", flush=True)
while True:
    sock.recv()
    sock.send(b"\\xff\\xfegarbage\\x00" * 3)
'''


def plugin(tmp_path, address, mode="good"):
    os.environ["PLUGIN_MODE"] = mode
    try:
        return start_plugin(PLUGIN, address, tmp_path)
    finally:
        del os.environ["PLUGIN_MODE"]


def write_prompts(path, count=4):
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"messages": [{"role": "user", "content": "Name a fruit."}],
                                "metadata": {"word": "apple", "index": i}}) + "\n")


def job_toml(tmp_path, name, addresses, steps=2, extra=""):
    plugin_tables = "".join(f'''
[[plugins]]
name = "fruit{i}"
addresses = {json.dumps(group)}
timeout_ms = 3000
retries = 1
backoff_ms = 50
''' for i, group in enumerate(addresses))
    return f'''name = "{name}"
prompts = "{tmp_path}/prompts.jsonl"
algorithm = "grpo"
steps = {steps}
prompts_per_step = 2
samples_per_prompt = 4
max_new_tokens = 8
checkpoint_every = 1
learning_rate = 0.001
seed = 3
{extra}
{plugin_tables}'''


def start_daemon(tmp_path, name="d"):
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    address = f"ipc://{directory}/recr1d.sock"
    daemon = Daemon(["--listen", address, "--state-dir", str(tmp_path / "state"), "--allow-dir", str(tmp_path),
                     "--seed", "7"], cwd=directory)
    daemon.wait_ready(address, timeout=120)
    return daemon, recr1.PolicyClient(address, timeout=300)


def wait_for(client, job_id, states=("JOB_SUCCEEDED", "JOB_FAILED", "JOB_STOPPED"), timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.job_status(job_id)
        if recr1.v1.policy_pb2.JobState.Name(status.state) in states:
            return status
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {status}")


def metrics_lines(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def test_a_grpo_job_runs_with_plugins_and_survives_failing_ones(tmp_path):
    write_prompts(tmp_path / "prompts.jsonl")
    good = f"ipc://{tmp_path}/good.sock"
    crash = f"ipc://{tmp_path}/crash.sock"
    hang = f"tcp://127.0.0.1:{free_port()}"
    wrong = f"ipc://{tmp_path}/wrong.sock"
    plugins = [plugin(tmp_path, good), plugin(tmp_path, crash, "crash"), plugin(tmp_path, hang, "hang"),
               plugin(tmp_path, wrong, "wrong-count")]
    daemon, client = start_daemon(tmp_path)
    try:
        # One plugin on two addresses (one of them crashes after its first call), plus a hanging one and a
        # wrong one as separate plugins in a second job.
        started = client.start_job(config_toml=job_toml(tmp_path, "fruit", [[good, crash]], steps=3))
        assert started.job.job_id == "fruit" and started.job.total_steps == 3
        with pytest.raises(recr1.FailedPrecondition):
            client.start_job(config_toml=job_toml(tmp_path, "second", [[good]]))
        assert client.health().running_job == "fruit"
        status = wait_for(client, "fruit")
        assert recr1.v1.policy_pb2.JobState.Name(status.state) == "JOB_SUCCEEDED", status.error
        assert status.step == 3 and status.checkpoint_path.endswith("checkpoints/step-3")
        lines = metrics_lines(status.metrics_path)
        assert [line["step"] for line in lines] == [1, 2, 3]
        assert all(line["policy_version"] == i + 1 for i, line in enumerate(lines))
        assert all(0 <= line["reward_mean"] <= 1 for line in lines)
        assert all("fruit0.length" in line for line in lines)

        # A hanging plugin and one that answers garbage bytes fail the job before step 1, by name. One that
        # answers the wrong count passes the one-item pre-flight (its one answer is right there) and fails
        # the job at step 1.
        garbage = f"ipc://{tmp_path}/garbage.sock"
        plugins.append(start_plugin(GARBAGE, garbage, tmp_path))
        for name, plugins_of_job, error in (
                ("hanging", [[good], [hang]], "pre-flight: reward plugin 'fruit1' did not answer"),
                ("garbage", [[good], [garbage]], "pre-flight: reward plugin 'fruit1' did not answer"),
                ("wrong", [[good], [wrong]], "step 1: 8 of 8 items (100%) got no reward, above max_failed_fraction 0.5; "
                                             "last plugin error: fruit1: ")):
            bad = client.start_job(config_toml=job_toml(tmp_path, name, plugins_of_job, steps=1))
            status = wait_for(client, bad.job.job_id)
            assert recr1.v1.policy_pb2.JobState.Name(status.state) == "JOB_FAILED"
            assert status.error.startswith(error), status.error
            assert status.step == 0
        assert "returned 1 results for 8 items" in status.error
        assert client.info().policy_version == 3
    finally:
        client.close()
        daemon.stop()
        for p in plugins:
            p.kill()


def test_missing_rewards_fail_the_job_or_skip_the_step_never_nan(tmp_path):
    write_prompts(tmp_path / "prompts.jsonl")
    none, nan = f"ipc://{tmp_path}/none.sock", f"ipc://{tmp_path}/nan.sock"
    plugins = [plugin(tmp_path, none, "none"), plugin(tmp_path, nan, "nan")]
    daemon, client = start_daemon(tmp_path)
    try:
        # The plugins answer (the pre-flight passes) but score nothing: step 1 fails the job.
        for name, address in (("unscored", none), ("nans", nan)):
            started = client.start_job(config_toml=job_toml(tmp_path, name, [[address]], steps=2))
            status = wait_for(client, started.job.job_id)
            assert recr1.v1.policy_pb2.JobState.Name(status.state) == "JOB_FAILED"
            assert status.error.startswith("step 1: 8 of 8 items (100%) got no reward, above max_failed_fraction 0.5"), \
                status.error
        assert "non-finite reward" in status.error
        # Allowed to go on, the step says it skipped, and its line holds no NaN.
        started = client.start_job(config_toml=job_toml(tmp_path, "tolerant", [[nan]], steps=1,
                                                        extra="max_failed_fraction = 1.0"))
        status = wait_for(client, started.job.job_id)
        assert recr1.v1.policy_pb2.JobState.Name(status.state) == "JOB_SUCCEEDED", status.error
        text = open(status.metrics_path).read()
        assert "nan" not in text.lower()
        line = metrics_lines(status.metrics_path)[-1]
        assert line["skipped"] == 1 and line["failed_items"] == 8 and "reward_mean" not in line
        assert "job tolerant step 1/1 skipped: no rewards (failed items 8)" in daemon.output()
        assert client.info().policy_version == 0
    finally:
        client.close()
        daemon.stop()
        for p in plugins:
            p.kill()


def test_recr1d_train_fails_before_step_1_when_a_plugin_is_down(tmp_path):
    write_prompts(tmp_path / "prompts.jsonl")
    (tmp_path / "job.toml").write_text(job_toml(tmp_path, "down", [[f"ipc://{tmp_path}/nobody.sock"]], steps=3))
    run = subprocess.run([recr1d_binary(), "train", str(tmp_path / "job.toml"), "--listen", f"ipc://{tmp_path}/t.sock",
                          "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "pre-flight: reward plugin 'fruit0' did not answer" in run.stderr
    assert "step 1/3" not in run.stderr


def test_bad_job_files_name_the_key(tmp_path):
    write_prompts(tmp_path / "prompts.jsonl")
    daemon, client = start_daemon(tmp_path)
    try:
        cases = [
            ('name = "x"\nprompts = "p.jsonl"\n', "steps"),
            (job_toml(tmp_path, "x", [["ipc:///tmp/none.sock"]]).replace('algorithm = "grpo"', 'algorithm = "ppo"'), "algorithm"),
            (job_toml(tmp_path, "x", []), "plugins"),
            (job_toml(tmp_path, "x", [["ipc:///tmp/none.sock"]], extra='objective = "ppo"'), "objective"),
            (job_toml(tmp_path, "x", [["ipc:///tmp/none.sock"]], extra="stepz = 3"), "stepz"),
            (job_toml(tmp_path, "x", [["ipc:///tmp/none.sock"]]).replace("prompts.jsonl", "missing.jsonl"), "prompts"),
        ]
        for text, key in cases:
            with pytest.raises(recr1.InvalidArgument) as caught:
                client.start_job(config_toml=text)
            assert key in str(caught.value), (key, str(caught.value))
        with pytest.raises(recr1.NotFound):
            client.job_status("nothing")
    finally:
        client.close()
        daemon.stop()


def test_a_killed_daemon_resumes_its_job_and_loses_no_completed_step(tmp_path):
    write_prompts(tmp_path / "prompts.jsonl")
    good = f"ipc://{tmp_path}/good.sock"
    proc = plugin(tmp_path, good)
    daemon, client = start_daemon(tmp_path, "first")
    try:
        client.start_job(config_toml=job_toml(tmp_path, "resume", [[good]], steps=4))
        metrics = tmp_path / "state" / "jobs" / "resume" / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            path = tmp_path / "state" / "jobs" / "resume" / "state.json"
            if path.exists() and json.loads(path.read_text()).get("checkpoint_step", 0) >= 2:
                break
            time.sleep(0.2)
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait()
        client.close()
        done_before = [line["step"] for line in metrics_lines(metrics)]
        assert 2 <= max(done_before) < 4

        daemon, client = start_daemon(tmp_path, "second")
        status = wait_for(client, "resume")
        assert recr1.v1.policy_pb2.JobState.Name(status.state) == "JOB_SUCCEEDED", status.error
        steps = [line["step"] for line in metrics_lines(metrics)]
        assert steps == [1, 2, 3, 4], steps
        assert status.step == 4
        assert client.info().policy_version == 4, "the resumed policy continued from the checkpoint's version"
    finally:
        client.close()
        daemon.stop()
        proc.kill()


def test_recr1d_train_runs_an_sft_job_to_the_end(tmp_path):
    with open(tmp_path / "sft.jsonl", "w") as f:
        for fruit in ("Apple.", "Mango.", "Banana."):
            f.write(json.dumps({"prompt": "Name a fruit:", "completion": " " + fruit}) + "\n")
    (tmp_path / "job.toml").write_text('name = "sft"\nprompts = "sft.jsonl"\nalgorithm = "sft"\nsteps = 3\n'
                                       'prompts_per_step = 3\nlearning_rate = 0.001\n')
    address = f"ipc://{tmp_path}/train.sock"
    result = subprocess.run([recr1d_binary(), "train", str(tmp_path / "job.toml"), "--listen", address,
                             "--state-dir", str(tmp_path / "state")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "job sft step 3/3" in result.stderr
    lines = metrics_lines(tmp_path / "state" / "jobs" / "sft" / "metrics.jsonl")
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert (tmp_path / "state" / "jobs" / "sft" / "checkpoints" / "step-3" / "trainer.json").exists()
