"""serve_reward: Python reward plugins as real processes over ipc and tcp."""

import json

import pytest

from recr1.errors import Code
from recr1.transport import Channel
from recr1.v1 import envelope_pb2, reward_pb2

from conftest import free_port, start_plugin

PLUGIN = '''
import sys, threading, recr1

def reward(items):
    out = []
    for item in items:
        if item.metadata.get("mode") == "wrong-count":
            return [1.0]
        if item.metadata.get("mode") == "raise":
            raise ValueError("cannot score " + item.id)
        if item.metadata.get("mode") == "skip":
            out.append(None)
        else:
            hit = item.metadata["target"] in item.completion
            out.append((1.0 if hit else 0.0, {"length": len(item.completion)}))
    return out

ready = threading.Event()
threading.Thread(target=lambda: (ready.wait(), print("ready", flush=True)), daemon=True).start()
recr1.serve_reward(reward, sys.argv[1], workers=2, ready_event=ready)
'''


def call(address, items, method="recr1.v1.Reward/Reward"):
    request = reward_pb2.RewardRequest(items=[
        reward_pb2.RewardItem(id=str(i), prompt="Capital of France?", completion=c, metadata_json=json.dumps(m))
        for i, (c, m) in enumerate(items)])
    envelope = envelope_pb2.Request(method=method, request_id=3, payload=request.SerializeToString())
    channel = Channel(address)
    try:
        reply = envelope_pb2.Reply.FromString(channel.roundtrip(envelope.SerializeToString(), 10))
    finally:
        channel.close()
    return reply


@pytest.fixture(params=["ipc", "tcp"])
def plugin(request, tmp_path):
    address = f"ipc://{tmp_path}/reward.sock" if request.param == "ipc" else f"tcp://127.0.0.1:{free_port()}"
    proc = start_plugin(PLUGIN, address, tmp_path)
    yield address
    proc.terminate()
    assert proc.wait(10) == 0  # SIGTERM stops the plugin cleanly


def test_rewards_per_item_with_details(plugin):
    reply = call(plugin, [("It is Paris.", {"target": "Paris"}), ("Lyon", {"target": "Paris"}),
                          ("x", {"mode": "skip"})])
    assert reply.status.code == Code.OK
    assert reply.request_id == 3
    results = reward_pb2.RewardReply.FromString(reply.payload).results
    assert [r.has_reward for r in results] == [True, True, False]
    assert [r.reward for r in results[:2]] == [1.0, 0.0]
    assert results[0].details["length"] == len("It is Paris.")
    assert "None" in results[2].error


def test_plugin_failures_are_statuses(plugin):
    wrong = call(plugin, [("a", {"mode": "wrong-count"}), ("b", {"mode": "wrong-count"})])
    assert wrong.status.code == Code.INTERNAL
    assert "1 results for 2 items" in wrong.status.message
    raised = call(plugin, [("a", {"mode": "raise"})])
    assert raised.status.code == Code.INTERNAL
    assert "ValueError" in raised.status.message
    unknown = call(plugin, [], method="recr1.v1.Policy/Info")
    assert unknown.status.code == Code.UNIMPLEMENTED
    channel = Channel(plugin)
    try:
        garbage = envelope_pb2.Reply.FromString(channel.roundtrip(b"\xff\xff\xff", 10))
    finally:
        channel.close()
    assert garbage.status.code == Code.INVALID_ARGUMENT
    # Still serving after all that.
    assert call(plugin, [("Paris", {"target": "Paris"})]).status.code == Code.OK
