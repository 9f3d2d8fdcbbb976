#!/usr/bin/env python3
"""Soak a real recr1d: N concurrent clients (threads, one PolicyClient each) mixing every call for a while.
Reports errors by code, p50/p99 latency per call, and recr1d's resident memory at the start and the end.

    python3 scripts/soak.py --clients 64 --seconds 600          # the issue's figure: 64 clients, 10 minutes
    python3 scripts/soak.py --clients 8 --seconds 30             # a quick look

Starts its own recr1d (the release build, SmolLM2, LoRA) in a temporary folder. Prints one JSON object; exits
1 when the daemon died, a call got INTERNAL, or a client saw an error other than the overload and the
validation errors the mix asks for on purpose."""

import argparse
import json
import os
import pathlib
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "clients" / "python"))

import recr1  # noqa: E402

FRUIT = [{"role": "user", "content": "Name a fruit."}]
MOVIE = [{"role": "user", "content": "Recommend a movie for a rainy day."}]
EXPECTED = {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "NOT_FOUND", "FAILED_PRECONDITION"}


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def calls(client, rng):
    """The mix: name -> a function doing one call (some of them bad on purpose)."""
    def generate():
        client.generate([rng.choice([FRUIT, MOVIE])], n=rng.choice([1, 2, 4]), temperature=1.0, max_new_tokens=8,
                        seed=rng.randrange(1 << 30), store=rng.random() < 0.5)

    def generate_bad():
        client.generate([FRUIT], n=10 ** 6)

    def score():
        client.score([(FRUIT, "An apple."), (MOVIE, "Casablanca.")], which=rng.choice(["policy", "both"]))

    def update():
        if rng.random() < 0.5:
            client.update(sft=recr1.sft_batch([(FRUIT, "Apple."), (MOVIE, "Amelie.")]), learning_rate=1e-5)
        else:
            ids = client.apply_chat_template([FRUIT]).tokens[0].ids
            apple, rock = client.tokenize(["Apple.", "A rock."])
            client.update(grpo=recr1.grpo_batch([[({"prompt_tokens": ids, "completion_tokens": apple}, 1.0),
                                                  ({"prompt_tokens": ids, "completion_tokens": rock}, 0.0)]]),
                          learning_rate=1e-5)

    def checkpoint():
        name = f"soak-{rng.randrange(4)}"
        client.save_checkpoint(name)
        if rng.random() < 0.3:
            client.load_checkpoint(name)

    return {
        "Info": client.info, "Health": client.health,
        "Tokenize": lambda: client.tokenize(["a movie about " * rng.randrange(1, 50)]),
        "Detokenize": lambda: client.detokenize([[rng.randrange(49152) for _ in range(20)]]),
        "ApplyChatTemplate": lambda: client.apply_chat_template([MOVIE]),
        "Generate": generate, "Generate(bad)": generate_bad, "Score": score, "Update": update,
        "Checkpoint": checkpoint, "LoadCheckpoint(missing)": lambda: client.load_checkpoint("never-saved"),
        "JobStatus(missing)": lambda: client.job_status("none"),
    }


WEIGHTS = {"Info": 5, "Health": 10, "Tokenize": 10, "Detokenize": 5, "ApplyChatTemplate": 5, "Generate": 20,
           "Generate(bad)": 3, "Score": 15, "Update": 4, "Checkpoint": 1, "LoadCheckpoint(missing)": 2,
           "JobStatus(missing)": 2}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--recr1d", default=os.environ.get("RECR1D") or str(REPO / ".build" / "release" / "recr1d"))
    parser.add_argument("--workers", type=int, default=8, help="recr1d's workers (requests in flight at once)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    folder = pathlib.Path(tempfile.mkdtemp(prefix="recr1-soak-"))
    address = f"ipc://{folder}/soak.sock"
    log = open(folder / "recr1d.log", "w")
    process = subprocess.Popen([args.recr1d, "serve", "--listen", address, "--state-dir", str(folder / "state"),
                                "--workers", str(args.workers), "--max-queued-requests", "64", "--seed", "5"],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            with recr1.PolicyClient(address, timeout=2) as c:
                c.health()
            break
        except recr1.RecR1Error:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"recr1d did not start: {folder}/recr1d.log")
            time.sleep(0.1)
    rss_start = rss_kib(process.pid)
    latencies, codes, unexpected = {}, {}, []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds

    def client_loop(index):
        rng = random.Random(index)
        with recr1.PolicyClient(address, timeout=300) as client:
            mix = calls(client, rng)
            names, weights = zip(*WEIGHTS.items())
            while time.monotonic() < stop_at:
                name = rng.choices(names, weights)[0]
                started = time.monotonic()
                code = "OK"
                try:
                    mix[name]()
                except recr1.RecR1Error as exc:
                    code = exc.code_name
                    if exc.code == recr1.Code.RESOURCE_EXHAUSTED:
                        time.sleep(exc.retry_after_ms / 1000 or 0.05)
                elapsed = time.monotonic() - started
                with lock:
                    latencies.setdefault(name, []).append(elapsed)
                    codes.setdefault(name, {}).setdefault(code, 0)
                    codes[name][code] += 1
                    if code != "OK" and (code not in EXPECTED or code == "INTERNAL"):
                        unexpected.append(f"{name}: {code}")

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(args.clients)]
    rss_peak, last_note = rss_start, time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        if process.poll() is not None:
            break
        rss_peak = max(rss_peak, rss_kib(process.pid))
        if time.monotonic() - last_note >= 60:
            last_note = time.monotonic()
            with lock:
                done = sum(len(v) for v in latencies.values())
            print(f"soak: {done} calls, {max(0, stop_at - last_note):.0f} s left, RSS {rss_kib(process.pid) // 1024} MiB",
                  file=sys.stderr, flush=True)
    alive = process.poll() is None
    rss_end = rss_kib(process.pid) if alive else 0
    if alive:
        process.send_signal(signal.SIGTERM)
        process.wait(60)

    def quantile(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    result = {
        "clients": args.clients, "seconds": args.seconds, "daemon_alive": alive, "exit_status": process.returncode,
        "calls": sum(len(v) for v in latencies.values()),
        "per_call": {name: {"count": len(v), "p50_ms": round(1000 * statistics.median(v), 1),
                            "p99_ms": round(1000 * quantile(v, 0.99), 1), "codes": codes[name]}
                     for name, v in sorted(latencies.items())},
        "rss_mib": {"start": round(rss_start / 1024), "peak": round(rss_peak / 1024), "end": round(rss_end / 1024)},
        "unexpected": unexpected[:20], "unexpected_count": len(unexpected), "log": str(folder / "recr1d.log"),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")
    return 0 if alive and not unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
