"""serve_reward: a Python function becomes a Reward plugin (service Reward in proto/recr1/v1/reward.proto).

The function takes a list of RewardItem and returns one entry per item: a float, None (this item could
not be scored: recr1d leaves it out of the update), or (float, {"name": value, ...}) with details."""

import dataclasses
import hmac
import json
import logging
import os
import signal
import sys
import threading

import pynng

from recr1.errors import Code, RecR1Error
from recr1.transport import close_quietly, set_recv_timeout
from recr1.v1 import envelope_pb2, reward_pb2

METHOD = "recr1.v1.Reward/Reward"
log = logging.getLogger("recr1.reward")


@dataclasses.dataclass
class RewardItem:
    """One completion to score. Only the completion is required, so that a test of a reward function can
    write RewardItem(completion="...", metadata={"rating": 4})."""
    prompt: str = ""
    completion: str = ""
    metadata: dict = dataclasses.field(default_factory=dict)
    prompt_messages: list = dataclasses.field(default_factory=list)
    id: str = ""


def _status_reply(request_id, code, message, field=""):
    reply = envelope_pb2.Reply(request_id=request_id)
    reply.status.code = code
    reply.status.message = message
    reply.status.field = field
    return reply.SerializeToString()


def _to_result(value):
    result = reward_pb2.RewardResult()
    if value is None:
        result.error = "the reward function returned None"
        return result
    details = {}
    if isinstance(value, (tuple, list)):
        value, details = value
    result.reward = float(value)
    result.has_reward = True
    for name, number in details.items():
        result.details[name] = float(number)
    return result


def handle_reward_frame(fn, frame, *, token=None, max_message_bytes=16 << 20):
    """One request frame in, one reply frame out: the envelope checks, then fn. Never raises."""
    if len(frame) > max_message_bytes:
        return _status_reply(0, Code.INVALID_ARGUMENT,
                             f"request of {len(frame)} bytes exceeds max_message_bytes ({max_message_bytes})",
                             "max_message_bytes")
    try:
        request = envelope_pb2.Request.FromString(frame)
    except Exception as exc:  # protobuf's DecodeError, or worse
        return _status_reply(0, Code.INVALID_ARGUMENT, f"envelope: malformed request envelope ({exc})", "envelope")
    rid = request.request_id
    if token and not hmac.compare_digest(request.auth_token.encode(), token.encode()):
        return _status_reply(rid, Code.UNAUTHENTICATED, "auth_token: wrong or missing token", "auth_token")
    if request.method != METHOD:
        return _status_reply(rid, Code.UNIMPLEMENTED, f"unknown method '{request.method}' (this plugin serves {METHOD})")
    try:
        batch = reward_pb2.RewardRequest.FromString(request.payload)
    except Exception as exc:
        return _status_reply(rid, Code.INVALID_ARGUMENT, f"payload: cannot decode RewardRequest ({exc})", "payload")
    items = []
    for index, item in enumerate(batch.items):
        try:
            metadata = json.loads(item.metadata_json) if item.metadata_json else {}
        except ValueError as exc:
            return _status_reply(rid, Code.INVALID_ARGUMENT, f"items[{index}].metadata_json: not JSON ({exc})",
                                 f"items[{index}].metadata_json")
        items.append(RewardItem(item.prompt, item.completion, metadata,
                                [{"role": m.role, "content": m.content} for m in item.prompt_messages], item.id))
    try:
        values = list(fn(items))
        if len(values) != len(items):
            raise RecR1Error(f"the reward function returned {len(values)} results for {len(items)} items",
                             code=Code.INTERNAL)
        reply_payload = reward_pb2.RewardReply(results=[_to_result(v) for v in values])
    except RecR1Error as exc:
        return _status_reply(rid, exc.code, exc.message, exc.field)
    except Exception as exc:
        log.exception("reward function failed")
        return _status_reply(rid, Code.INTERNAL, f"the reward function raised {type(exc).__name__}: {exc}")
    reply = envelope_pb2.Reply(request_id=rid, payload=reply_payload.SerializeToString())
    reply.status.code = Code.OK
    return reply.SerializeToString()


def serve_reward(fn, address, *, workers=1, token=None, max_message_bytes=16 << 20, stop_event=None,
                 ready_event=None, name="reward plugin"):
    """Serves fn as a Reward plugin on address (ipc://, tcp://) until SIGTERM/SIGINT or stop_event.
    Prints "<name>: listening on <address>" on stderr once it listens (name=None: silent).

    workers requests are handled concurrently (threads, one nng context each). ipc socket files are
    created owner-only. In the main thread, SIGTERM and SIGINT stop the plugin after the requests in
    flight are answered."""
    stop = stop_event or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    sock = pynng.Rep0(recv_max_size=max(2 * max_message_bytes, max_message_bytes + (16 << 20)))
    old_umask = os.umask(0o077)  # the ipc socket file is created owner-only
    try:
        sock.listen(address)
    finally:
        os.umask(old_umask)
    # On stderr as well as in the log: a plugin started by hand, or by a unit file, says where it is.
    if name:
        print(f"{name}: listening on {address}", file=sys.stderr, flush=True)
    log.info("reward plugin listening on %s", address)

    def work():
        context = sock.new_context()
        set_recv_timeout(context, 200)  # wake up now and then to notice a stop
        while not stop.is_set():
            try:
                frame = context.recv()
            except pynng.Timeout:
                continue
            except pynng.Closed:
                break
            context.send(handle_reward_frame(fn, frame, token=token, max_message_bytes=max_message_bytes))
        close_quietly(context)

    threads = [threading.Thread(target=work, name=f"reward-{i}", daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    if ready_event is not None:
        ready_event.set()
    try:
        while any(t.is_alive() for t in threads):
            stop.wait(0.2)
            if stop.is_set():
                for t in threads:
                    t.join()
    finally:
        stop.set()
        sock.close()
