"""kill -9 of recr1d in the middle of SaveCheckpoint, at random moments: every checkpoint ever reported saved
loads and scores exactly as when it was saved, and what a killed save leaves behind never breaks a later one."""

import random
import signal
import threading
import time

import recr1

from conftest import Daemon
from test_training import logprobs, train_steps

TRIALS = 20


def start(tmp_path, trial):
    folder = tmp_path / f"run-{trial}"
    folder.mkdir()
    address = f"ipc://{folder}/recr1d.sock"
    daemon = Daemon(["--listen", address, "--state-dir", str(tmp_path / "state"), "--seed", "7",
                     "--matmul-backend", "openblas"], cwd=folder)
    daemon.wait_ready(address, timeout=120)
    return daemon, recr1.PolicyClient(address, timeout=20)


def test_kill_9_during_save_checkpoint_loses_no_reported_checkpoint(tmp_path):
    rng = random.Random(11)
    saved = None        # the scores of the newest save that was answered
    in_flight = None    # the scores of a save that was killed before its answer: it may or may not have landed
    save_seconds = None
    outcomes = {"answered": 0, "killed": 0, "landed_unanswered": 0}
    for trial in range(TRIALS):
        daemon, client = start(tmp_path, trial)
        try:
            if saved is not None or in_flight is not None:
                try:
                    client.load_checkpoint("ck")
                except recr1.NotFound:
                    assert saved is None, f"trial {trial}: a checkpoint reported saved is gone"
                else:
                    now = logprobs(client)[1]
                    assert now in [s for s in (saved, in_flight) if s is not None], f"trial {trial}: a checkpoint not saved"
                    if now == in_flight and now != saved:
                        outcomes["landed_unanswered"] += 1
                    saved = now
                in_flight = None
            train_steps(client, 1 + trial % 2)
            scores = logprobs(client)[1]
            answer = {}

            def save():
                try:
                    started = time.monotonic()
                    client.save_checkpoint("ck")
                    answer["seconds"] = time.monotonic() - started
                except recr1.RecR1Error as exc:   # the daemon died under the call
                    answer["error"] = exc

            # A whole save first, in this trial's own conditions (a checkpoint already there from trial 1 on): its
            # time sets the range of the kill moment, so the race is hit however fast this machine's disk is.
            save()
            assert "seconds" in answer, answer
            save_seconds = answer.pop("seconds")
            saved = scores
            train_steps(client, 1)
            scores = logprobs(client)[1]
            thread = threading.Thread(target=save)
            thread.start()
            if trial % 4 == 3:   # killed just after the answer: a reported save must be on disk, not in a cache
                thread.join(60)
            else:
                time.sleep(rng.uniform(0, 1.2 * save_seconds))
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait()
            client.close()   # a call whose server died waits for its timeout; closing ends it at once
            thread.join(60)
            assert not thread.is_alive()
            if "seconds" in answer:
                saved = scores
                outcomes["answered"] += 1
            else:
                in_flight = scores
                outcomes["killed"] += 1
        finally:
            client.close()
            daemon.stop()
    print(f"kill -9 during SaveCheckpoint (the last whole save took {save_seconds:.2f} s), {TRIALS} trials: {outcomes}")
    assert outcomes["killed"] >= 5 and outcomes["answered"] >= 2, outcomes   # both sides of the race were hit

    # After all that: the last checkpoint loads, a new save works, and it leaves no partial directories behind.
    daemon, client = start(tmp_path, "final")
    try:
        client.load_checkpoint("ck")
        now = logprobs(client)[1]
        assert now in [s for s in (saved, in_flight) if s is not None]
        client.save_checkpoint("ck")
        leftovers = sorted(p.name for p in (tmp_path / "state").iterdir() if p.name.startswith("ck."))
        assert leftovers == [], leftovers
        client.load_checkpoint("ck")
        assert logprobs(client)[1] == now
    finally:
        client.close()
        daemon.stop()
