"""Calling a reward plugin (service Reward, proto/recr1/v1/reward.proto) from Python: any plugin, in any
language, becomes a function of a list of RewardItem, like the in-process rewards."""

import json

from recr1.reward import METHOD
from recr1.transport import Channel
from recr1.v1 import common_pb2, reward_pb2


class RewardClient:
    """RewardClient(address)(items) -> [reward or None, ...] with details: [(reward, {name: value}) | None].
    Raises the typed errors of recr1.errors when the plugin answers a status."""

    def __init__(self, address, token=None, timeout=60.0):
        self.timeout = timeout
        self._channel = Channel(address, token=token)

    def __call__(self, items):
        request = reward_pb2.RewardRequest(items=[
            reward_pb2.RewardItem(
                prompt=item.prompt, completion=item.completion, id=item.id,
                metadata_json=json.dumps(item.metadata),
                prompt_messages=[common_pb2.ChatMessage(role=m["role"], content=m["content"])
                                 for m in item.prompt_messages])
            for item in items])
        reply = self._channel.call(METHOD, request, reward_pb2.RewardReply, self.timeout)
        return [(r.reward, dict(r.details)) if r.has_reward else None for r in reply.results]

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
