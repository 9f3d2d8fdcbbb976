#!/usr/bin/env python3
"""Fuzz a real recr1d over nng: random, truncated and bit-flipped envelopes, garbage payloads for every
method, absurd values (n = 1e9, max_new_tokens = 1e9, NaN temperatures, out-of-vocabulary ids, 40k-character
prompts, oversized frames). Every frame must get a reply that is a Status (none may hang or crash the
daemon), no bad input may get INTERNAL, and greedy output must be the same afterwards unless an Update was
accepted (a mutation can be a valid request).

    python3 scripts/fuzz.py --frames 20000            # starts its own recr1d (the release build) in a temp dir
    python3 scripts/fuzz.py --frames 1000000 --json out.json

Prints progress to stderr and one JSON object (the figures) to stdout; exits 1 when a check fails."""

import argparse
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time

import pynng

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python"))

from recr1 import PolicyClient  # noqa: E402
from recr1.transport import set_recv_timeout  # noqa: E402
from recr1.v1 import common_pb2, envelope_pb2, policy_pb2  # noqa: E402

SERVICE = "recr1.v1.Policy/"
METHODS = ["Info", "Health", "Tokenize", "Detokenize", "ApplyChatTemplate", "Generate", "Score", "Update",
           "SaveCheckpoint", "LoadCheckpoint", "Export", "StartJob", "JobStatus", "StopJob"]
MAX_MESSAGE_BYTES = 1 << 20   # the fuzzed daemon's limit: frames of 1-2 MiB get a status, larger are dropped
HUGE = 10 ** 9
NAN = float("nan")


def chat(text):
    return common_pb2.Prompt(chat=common_pb2.Conversation(messages=[common_pb2.ChatMessage(role="user", content=text)]))


def tokens(ids):
    return common_pb2.Prompt(tokens=common_pb2.TokenIds(ids=ids))


def absurd_requests():
    """(method, request) pairs of values no client should send; each must be refused with a status."""
    P, S = policy_pb2, policy_pb2.SamplingParams
    long_text = "recommend " * 4000                              # 40k characters
    out = [
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], n=HUGE)),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], sampling=S(max_new_tokens=HUGE))),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], sampling=S(temperature=NAN))),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], sampling=S(temperature=-1))),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], sampling=S(temperature=float("inf")))),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], sampling=S(top_p=NAN))),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], sampling=S(top_p=2.0))),
        ("Generate", P.GenerateRequest(prompts=[tokens([2 ** 31, 5])])),
        ("Generate", P.GenerateRequest(prompts=[tokens([49152, 1])])),
        ("Generate", P.GenerateRequest(prompts=[tokens([])])),
        ("Generate", P.GenerateRequest(prompts=[chat(long_text)])),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")] * 10_000)),
        ("Generate", P.GenerateRequest(prompts=[])),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], sampling=S(stop_token_ids=[2 ** 32 - 1]))),
        ("Generate", P.GenerateRequest(prompts=[chat("Hi")], sampling=S(stop_strings=["x" * 100_000] * 11))),
        ("Score", P.ScoreRequest(items=[P.ScoreItem(prompt=chat("Hi"), completion=common_pb2.Continuation(
            tokens=common_pb2.TokenIds(ids=[4_000_000_000])))])),
        ("Score", P.ScoreRequest(items=[P.ScoreItem(prompt=chat(long_text), completion=common_pb2.Continuation(text="x"))])),
        ("Score", P.ScoreRequest(items=[P.ScoreItem(prompt=chat("Hi"))])),
        ("Score", P.ScoreRequest(items=[], score_with=77)),
        ("Tokenize", P.TokenizeRequest(texts=[long_text * 30])),
        ("Detokenize", P.DetokenizeRequest(sequences=[common_pb2.TokenIds(ids=[2 ** 32 - 1, 49152])])),
        ("ApplyChatTemplate", P.ApplyChatTemplateRequest(conversations=[common_pb2.Conversation(
            messages=[common_pb2.ChatMessage(role="\x00" * 10, content="")])])),
        ("Update", P.UpdateRequest(learning_rate=NAN, sft=P.SftBatch())),
        ("Update", P.UpdateRequest(learning_rate=1e30, sft=P.SftBatch())),
        ("Update", P.UpdateRequest()),
        ("SaveCheckpoint", P.SaveCheckpointRequest(path="../escape")),
        ("SaveCheckpoint", P.SaveCheckpointRequest(path="a\x00b")),
        ("SaveCheckpoint", P.SaveCheckpointRequest(path="n" * 10_000)),
        ("SaveCheckpoint", P.SaveCheckpointRequest(path="/etc/recr1d-fuzz")),
        ("LoadCheckpoint", P.LoadCheckpointRequest(path="/etc")),
        ("LoadCheckpoint", P.LoadCheckpointRequest(path="does/not/exist")),
        ("Export", P.ExportRequest(directory="../up", format=1)),
        ("Export", P.ExportRequest(directory="x", format=99)),
        ("StartJob", P.StartJobRequest(config_toml="name = ']]]\n[[[")),
        ("StartJob", P.StartJobRequest(config_path="/etc/passwd")),
        ("JobStatus", P.JobStatusRequest(job_id="j" * 100_000)),
        ("StopJob", P.StopJobRequest(job_id="\x00")),
    ]
    grpo = P.GrpoBatch() if hasattr(P, "GrpoBatch") else None
    if grpo is not None:
        out.append(("Update", P.UpdateRequest(grpo=grpo)))
    return out


def request_classes():
    return {m: getattr(policy_pb2, f"{m}Request") for m in METHODS}


def envelope(method, payload, request_id, timeout_ms=20_000):
    return envelope_pb2.Request(method=method, request_id=request_id, timeout_ms=timeout_ms,
                                payload=payload).SerializeToString()


def flip(data, rng, flips):
    data = bytearray(data)
    for _ in range(flips):
        if data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


def defuse(method, payload, classes):
    """Payloads that decode to an Export or SaveCheckpoint the daemon would carry out are made bad ('..'
    added): a 500 MB merged export per hit would turn the fuzz into a disk test."""
    if method not in ("Export", "SaveCheckpoint", "StartJob"):
        return payload
    try:
        request = classes[method].FromString(payload)
    except Exception:   # noqa: BLE001 - not a message at all: bad as it is
        return payload
    if method == "Export":
        request.directory = "../" + request.directory
    elif method == "SaveCheckpoint":
        request.path = "../" + request.path
    elif request.WhichOneof("config") == "config_path":
        request.config_path = "../" + request.config_path
    return request.SerializeToString()


class Fuzzer:
    def __init__(self, address, rng, hang_seconds):
        self.address = address
        self.rng = rng
        self.hang_ms = int(hang_seconds * 1000)
        self.socket = pynng.Req0(resend_time=-1, recv_max_size=0, recv_timeout=self.hang_ms)
        self.socket.dial(address, block=True)
        self.classes = request_classes()
        self.absurd = [(m, r.SerializeToString()) for m, r in absurd_requests()]
        # The empty request of every method too (an empty SaveCheckpoint would save: defused like the rest).
        self.seeds = self.absurd + [(m, defuse(m, c().SerializeToString(), self.classes)) for m, c in self.classes.items()]
        self.request_id = 0
        self.counts = {"frames": 0, "replies": 0, "hangs": 0, "dropped_oversized": 0, "undecodable_replies": 0,
                       "internal": 0, "ok": 0, "updates_accepted": 0, "connection_resets": 0}
        self.codes = {}
        self.kinds = {}
        self.internal_examples = []
        self.seconds = {}

    def frame(self):
        """(kind, method or None, bytes) of one fuzzed frame."""
        rng = self.rng
        self.request_id += 1
        choice = rng.random()
        if choice < 0.10:
            return "random_bytes", None, rng.randbytes(rng.randrange(0, 512))
        method, payload = rng.choice(self.seeds)
        if choice < 0.30:
            return "absurd", method, envelope(SERVICE + method, payload, self.request_id)
        if choice < 0.45:
            full = envelope(SERVICE + method, payload, self.request_id)
            return "truncated_envelope", method, full[:rng.randrange(0, max(1, len(full)))]
        if choice < 0.60:
            full = envelope(SERVICE + method, payload, self.request_id)
            return "bitflipped_envelope", method, flip(full, rng, rng.randrange(1, 9))
        if choice < 0.75:
            method = rng.choice(METHODS)
            garbage = defuse(method, rng.randbytes(rng.randrange(0, 256)), self.classes)
            return "garbage_payload", method, envelope(SERVICE + method, garbage, self.request_id)
        if choice < 0.95:
            mutated = flip(payload, rng, rng.randrange(1, 5)) if rng.random() < 0.7 else payload[:rng.randrange(0, len(payload) + 1)]
            return "mutated_payload", method, envelope(SERVICE + method, defuse(method, mutated, self.classes), self.request_id)
        if choice < 0.98:
            name = rng.choice(["", "/", "recr1.v1.Policy/", "recr1.v1.Reward/Reward", SERVICE + "Nope", "\x00" * 8,
                               SERVICE + "Generate" * 100])
            return "bad_method", None, envelope(name, payload, self.request_id)
        if choice < 0.9995:   # over max_message_bytes but under twice it: answered with a status
            return "oversized", "Tokenize", envelope(SERVICE + "Tokenize", b"\x0a" + b"\xff" * (MAX_MESSAGE_BYTES + 1000),
                                                     self.request_id)
        # beyond the transport's cap (twice the limit, at least 16 MiB more): nng drops the frame and its
        # connection, by design
        cap = max(2 * MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + (16 << 20))
        return "oversized_dropped", "Tokenize", envelope(SERVICE + "Tokenize", b"\x00" * (cap + 4096), self.request_id)

    def send(self, kind, method, data):
        started = time.monotonic()
        try:
            self._send(kind, method, data)
        finally:
            key = f"{kind}:{method}"
            self.seconds[key] = self.seconds.get(key, 0.0) + time.monotonic() - started

    def _send(self, kind, method, data):
        self.counts["frames"] += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        context = self.socket.new_context()
        # A frame nng drops unread gets no reply by design: wait for it briefly, not a hang's time.
        set_recv_timeout(context, 2000 if kind == "oversized_dropped" else self.hang_ms)
        try:
            context.send(data)
            try:
                reply_bytes = context.recv()
            except pynng.NNGException as exc:   # a timeout, or the connection closed under the request
                if kind == "oversized_dropped":
                    self.counts["dropped_oversized"] += 1
                    self.reconnect()
                elif isinstance(exc, pynng.Timeout):
                    self.counts["hangs"] += 1
                else:
                    self.counts["connection_resets"] += 1
                    self.reconnect()
                return
        finally:
            try:
                context.close()
            except pynng.NNGException:
                pass
        self.counts["replies"] += 1
        try:
            reply = envelope_pb2.Reply.FromString(reply_bytes)
        except Exception:   # noqa: BLE001
            self.counts["undecodable_replies"] += 1
            return
        name = envelope_pb2.Code.Name(reply.status.code) if reply.status.code in envelope_pb2.Code.values() else str(reply.status.code)
        self.codes[name] = self.codes.get(name, 0) + 1
        if reply.status.code == envelope_pb2.Code.OK:
            self.counts["ok"] += 1
            if method == "Update":
                self.counts["updates_accepted"] += 1
        elif reply.status.code == envelope_pb2.Code.INTERNAL:
            self.counts["internal"] += 1
            if len(self.internal_examples) < 10:
                self.internal_examples.append({"kind": kind, "method": method, "message": reply.status.message[:300]})

    def reconnect(self):
        # nng closed the connection of a dropped frame; a fresh socket dials again at once.
        self.socket.close()
        self.socket = pynng.Req0(resend_time=-1, recv_max_size=0, recv_timeout=self.hang_ms)
        self.socket.dial(self.address, block=True)


def greedy(address):
    with PolicyClient(address, timeout=120) as client:
        reply = client.generate([[{"role": "user", "content": "Recommend a movie for a rainy day."}]], temperature=0,
                                max_new_tokens=4)
        return list(reply.results[0].completions[0].token_ids), client.health().policy_version


def start_daemon(folder, binary):
    address = f"ipc://{folder}/fuzz.sock"
    log = open(folder / "recr1d.log", "w")
    process = subprocess.Popen([binary, "serve", "--listen", address, "--state-dir", str(folder / "state"),
                                "--max-message-bytes", str(MAX_MESSAGE_BYTES), "--max-new-tokens", "4",
                                "--max-sequence-tokens", "512", "--max-prompts-per-request", "8",
                                "--max-samples-per-prompt", "4", "--workers", "2", "--seed", "3"],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"recr1d exited with {process.returncode}: see {folder}/recr1d.log")
        try:
            with PolicyClient(address, timeout=2) as client:
                client.health()
            return process, address
        except Exception:   # noqa: BLE001 - not up yet
            time.sleep(0.1)
    process.kill()
    raise SystemExit("recr1d did not start")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hang-seconds", type=float, default=30.0, help="no reply within this is a hang")
    parser.add_argument("--recr1d", default=os.environ.get("RECR1D") or str(REPO / ".build" / "release" / "recr1d"))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    folder = pathlib.Path(tempfile.mkdtemp(prefix="recr1-fuzz-"))
    process, address = start_daemon(folder, args.recr1d)
    started = time.monotonic()
    try:
        before, version_before = greedy(address)
        fuzzer = Fuzzer(address, random.Random(args.seed), args.hang_seconds)
        for i in range(1, args.frames + 1):
            fuzzer.send(*fuzzer.frame())
            if process.poll() is not None:
                break
            if i % 5000 == 0 or i == args.frames:
                rate = i / (time.monotonic() - started)
                print(f"fuzz: {i}/{args.frames} frames, {rate:.0f}/s, hangs {fuzzer.counts['hangs']}, "
                      f"internal {fuzzer.counts['internal']}", file=sys.stderr, flush=True)
        alive = process.poll() is None
        after, version_after = greedy(address) if alive else (None, None)
    finally:
        crashed = process.poll() is not None
        if not crashed:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    unchanged = after == before if fuzzer.counts["updates_accepted"] == 0 else None
    result = {
        "frames": fuzzer.counts["frames"], "seconds": round(time.monotonic() - started, 1), "seed": args.seed,
        "crashes": int(crashed), "hangs": fuzzer.counts["hangs"], "internal": fuzzer.counts["internal"],
        "replies": fuzzer.counts["replies"], "connection_resets": fuzzer.counts["connection_resets"],
        "undecodable_replies": fuzzer.counts["undecodable_replies"],
        "dropped_oversized_frames": fuzzer.counts["dropped_oversized"], "ok_replies": fuzzer.counts["ok"],
        "updates_accepted": fuzzer.counts["updates_accepted"], "codes": dict(sorted(fuzzer.codes.items())),
        "kinds": dict(sorted(fuzzer.kinds.items())),
        "slowest": dict(sorted(((k, round(v, 2)) for k, v in fuzzer.seconds.items()), key=lambda kv: -kv[1])[:8]),
        "internal_examples": fuzzer.internal_examples,
        "greedy_unchanged": unchanged, "policy_version": [version_before, version_after], "log": str(folder / "recr1d.log"),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")
    failed = (crashed or result["hangs"] or result["internal"] or result["undecodable_replies"] or result["connection_resets"]
              or unchanged is False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
