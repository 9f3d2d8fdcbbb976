"""The reward plugins as real processes (python -m recr1.rewards.NAME, recr1 reward NAME) over real nng
ipc sockets, called with pynng: rewards, malformed completions, and requests the plugin must refuse with
a status."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from recr1 import cli
from recr1.errors import Code, InvalidArgument
from recr1.reward import RewardItem
from recr1.rewards import rlrf4rec
from recr1.rewards.remote import RewardClient
from recr1.transport import Channel
from recr1.v1 import envelope_pb2, reward_pb2

from esci_fixture import write_esci_csv

GOOD_REC_R1 = '<think>the user likes animation</think>\n<answer>{"query": "%s"}</answer>'
GOOD_RECZERO = ("<analyze user>likes comedies</analyze user><analyze item>a comedy</analyze item>"
                "<match>good</match><rate>%s</rate>")


class Plugin:
    def __init__(self, argv, folder, name):
        self.log_path = os.path.join(folder, f"{name}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, *argv], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while f"recr1 reward {name}: listening on" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"plugin {name} did not start:\n{self.output()}")
            time.sleep(0.05)

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(15)
        self.log.close()
        return code


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    write_esci_csv(folder / "shop.csv")
    assert cli.main(["data", "esci", str(folder / "shop.csv"), "--out", str(folder / "shop")]) == 0
    (folder / "token").write_text("s3cret\n")
    return folder


@pytest.fixture(scope="module")
def rec_r1_plugin(folder):
    address = f"ipc://{folder}/rec_r1.sock"
    plugin = Plugin(["-m", "recr1.rewards.rec_r1", address, "--catalogue",
                     f"shop={folder}/shop/catalogue.jsonl", "--default-catalogue", "ml-100k", "--workers", "2"],
                    str(folder), "rec_r1")
    yield address
    assert plugin.stop() == 0      # SIGTERM stops it cleanly


@pytest.fixture(scope="module")
def reczero_plugin(folder):
    address = f"ipc://{folder}/reczero.sock"
    plugin = Plugin(["-m", "recr1", "reward", "reczero", address, "--token-file", str(folder / "token")],
                    str(folder), "reczero")
    yield address
    assert plugin.stop() == 0


@pytest.fixture(scope="module")
def rlrf4rec_plugin(folder):
    address = f"ipc://{folder}/rlrf4rec.sock"
    plugin = Plugin(["-m", "recr1", "reward", "rlrf4rec", address, "--k", "10"], str(folder), "rlrf4rec")
    yield address
    assert plugin.stop() == 0


def call(address, items, token="", raw_metadata=None):
    """One Reward request; items: (completion, metadata dict) pairs. Returns the envelope Reply."""
    request = reward_pb2.RewardRequest(items=[
        reward_pb2.RewardItem(id=str(i), completion=completion,
                              metadata_json=raw_metadata if raw_metadata is not None else json.dumps(metadata))
        for i, (completion, metadata) in enumerate(items)])
    envelope = envelope_pb2.Request(method="recr1.v1.Reward/Reward", request_id=9, auth_token=token,
                                    payload=request.SerializeToString())
    channel = Channel(address)
    try:
        return envelope_pb2.Reply.FromString(channel.roundtrip(envelope.SerializeToString(), 30))
    finally:
        channel.close()


def results(reply):
    assert reply.status.code == Code.OK, reply.status.message
    return reward_pb2.RewardReply.FromString(reply.payload).results


def test_rec_r1_plugin_rewards(rec_r1_plugin):
    toy = {"target": "1"}                                   # the default catalogue: ml-100k
    shop = {"catalogue": "shop", "targets": {"P1": 1.0, "P2": 0.1, "P3": 0.01}}
    out = results(call(rec_r1_plugin, [
        (GOOD_REC_R1 % "toy story animation", toy),
        ('<answer>{"query": "toy story"}</answer>', toy),           # no <think>
        ("toy story", toy),                                         # no tags at all
        (GOOD_REC_R1 % "running shoes men", shop),
    ]))
    assert [r.has_reward for r in out] == [True] * 4
    assert out[0].reward == pytest.approx(1.1) and out[0].details["ndcg"] == pytest.approx(1.0)
    assert out[1].reward == -2.0 and out[1].details["format"] == 0.0
    assert out[2].reward == -2.0
    # P1 (men, running, shoes) first, P2 (running, shoes) second; P3 has "shoe", not "shoes": not retrieved.
    ndcg = (1.0 + 0.1 / math.log2(3)) / (1.0 + 0.1 / math.log2(3) + 0.01 / math.log2(4))
    assert out[3].reward == pytest.approx(0.1 + ndcg, rel=1e-6)
    assert out[3].details["format"] == 1.0


def test_rec_r1_plugin_refuses_bad_requests(rec_r1_plugin):
    empty = call(rec_r1_plugin, [])
    assert empty.status.code == Code.OK and len(results(empty)) == 0
    missing = call(rec_r1_plugin, [(GOOD_REC_R1 % "x", {"target": "1"}), (GOOD_REC_R1 % "x", {"item": "1"})])
    assert missing.status.code == Code.INVALID_ARGUMENT
    assert missing.status.field == "items[1].metadata.target"
    unknown = call(rec_r1_plugin, [(GOOD_REC_R1 % "x", {"catalogue": "shop", "target": "1"})])
    assert unknown.status.code == Code.INVALID_ARGUMENT and "not in catalogue 'shop'" in unknown.status.message
    not_object = call(rec_r1_plugin, [("x", None)], raw_metadata="[1, 2]")
    assert not_object.status.code == Code.INVALID_ARGUMENT and not_object.status.field == "items[0].metadata_json"
    not_json = call(rec_r1_plugin, [("x", None)], raw_metadata="{target")
    assert not_json.status.code == Code.INVALID_ARGUMENT and not_json.status.field == "items[0].metadata_json"
    bad_k = call(rec_r1_plugin, [(GOOD_REC_R1 % "x", {"target": "1", "k": "ten"})])
    assert bad_k.status.code == Code.INVALID_ARGUMENT and bad_k.status.field == "items[0].metadata.k"
    # Still serving.
    assert results(call(rec_r1_plugin, [(GOOD_REC_R1 % "toy story", {"target": "1"})]))[0].reward > 1


def test_reczero_plugin(reczero_plugin):
    out = results(call(reczero_plugin, [
        (GOOD_RECZERO % "4", {"rating": 4}),
        (GOOD_RECZERO % "2", {"rating": 5.0}),
        ("<rate>5</rate>", {"rating": 5}),                 # the rating parses, the format does not
        ("I would say 4.", {"rating": 4}),
    ], token="s3cret"))
    assert [r.reward for r in out] == [2.0, pytest.approx(1 + 1 - 3 / 2), 0.0, -1.0]
    assert out[1].details["abs_error"] == 3.0 and out[3].details["format"] == -1.0
    assert "accuracy" not in out[3].details
    missing = call(reczero_plugin, [(GOOD_RECZERO % "4", {"truth": 4})], token="s3cret")
    assert missing.status.code == Code.INVALID_ARGUMENT and missing.status.field == "items[0].metadata.rating"
    text = call(reczero_plugin, [(GOOD_RECZERO % "4", {"rating": "4"})], token="s3cret")
    assert text.status.code == Code.INVALID_ARGUMENT and "a finite number" in text.status.message
    assert call(reczero_plugin, [(GOOD_RECZERO % "4", {"rating": 4})]).status.code == Code.UNAUTHENTICATED


def test_reward_command_lists_the_plugins(capsys):
    assert cli.main(["reward"]) == 2
    assert "rec_r1, reczero, rlrf4rec" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown plugin 'bm42'"):
        cli.main(["reward", "bm42", "ipc:///tmp/x.sock"])


def test_rlrf4rec_plugin_scores_texts_for_dpo_pairs(rlrf4rec_plugin):
    record = {"id": "user-1", "messages": [{"role": "user", "content": "Describe the user."}],
              "metadata": {"catalogue": "ml-100k", "target": "1"}}
    texts = ["Loves Pixar animation such as Toy Story.", "Enjoys war documentaries.", "Toy comedies."]
    with RewardClient(rlrf4rec_plugin) as client:
        rewards = rlrf4rec.score_completions(client, record, texts)
        assert rewards[0] == pytest.approx(1.0) and rewards[1] == 0.0
        pairs = rlrf4rec.dpo_pairs([record, dict(record, id="user-2")],
                                   [texts, ["war", "documentaries"]], client)
        with pytest.raises(InvalidArgument) as error:
            client([RewardItem("", "x", {"catalogue": "ml-1m", "target": "1"}, [], "0")])
    assert [p["id"] for p in pairs] == ["user-1"]              # user-2: a tie at 0, no pair
    assert (pairs[0]["chosen"], pairs[0]["rejected"]) == (texts[0], texts[1])
    assert error.value.field == "items[0].metadata.target"     # ml-1m ids are titles
