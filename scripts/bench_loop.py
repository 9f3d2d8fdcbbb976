#!/usr/bin/env python3
"""The GRPO step of `recr1d bench --grpo-step-rec` (or --grpo-step), run as a recipe runs it: a Python client
of a real recr1d over nng. One Generate for all prompts (n samples each, the rollouts kept), the rewards in
Python, one Update citing the rollouts by id. Prints one JSON object: the step's wall time and its parts, so
that `recr1d bench --loop` can set it beside the engine's own step of the same shape.

    python3 scripts/bench_loop.py --recr1d .build/release/recr1d \
        --prompts scripts/reference/grpo_step_rec_prompts.json --new-tokens 96 --training lora --learning-rate 1e-5

The shape's settings are `recr1d bench`'s (its StepShape), passed in by `recr1d bench --loop`.

Every sample runs to --new-tokens (ignore_eos), as in the engine's step and TRL's; reward: the share of
distinct tokens in the completion (the same cheap reward as both)."""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "clients" / "python"))

import recr1  # noqa: E402
from recr1.recipes.daemon import LocalDaemon  # noqa: E402

def progress(message):
    print(f"bench-loop: {message}", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recr1d", help="the recr1d binary (default: the release build of this tree)")
    parser.add_argument("--prompts", required=True, help="the step's user messages (a JSON list of strings)")
    parser.add_argument("--new-tokens", type=int, required=True, help="new tokens per sample (every sample runs to it)")
    parser.add_argument("--training", choices=["lora", "full"], required=True, help="LoRA r16 alpha 32, or full fine-tuning")
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--samples", type=int, default=8, help="samples per prompt")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after a warm-up step")
    parser.add_argument("--threads", type=int, default=2, help="recr1d's blas_threads")
    parser.add_argument("--matmul-backend", help="recr1d's matmul_backend (default: the fastest here)")
    args = parser.parse_args()
    messages = json.loads(pathlib.Path(args.prompts).read_text())
    prompts = [[{"role": "user", "content": m}] for m in messages]

    settings = {"seed": 1, "learning_rate": args.learning_rate, "blas_threads": args.threads,
                "training_mode": args.training}
    if args.training == "lora":
        settings.update(lora_rank=16, lora_alpha=32)
    if args.matmul_backend:
        settings["matmul_backend"] = args.matmul_backend
    steps = []
    with tempfile.TemporaryDirectory(prefix="recr1-bench-loop-") as folder, \
            LocalDaemon(folder, settings, binary=args.recr1d, log=progress) as daemon, daemon.client() as client:
        for index in range(args.repeats + 1):
            what = "warm-up" if index == 0 else f"run {index}/{args.repeats}"
            started = time.monotonic()
            reply = client.generate(prompts, n=args.samples, temperature=1.0, seed=index + 1,
                                    max_new_tokens=args.new_tokens, ignore_eos=True)
            generated = time.monotonic()
            groups = [[(c.rollout_id, len(set(c.token_ids)) / max(1, len(c.token_ids))) for c in result.completions]
                      for result in reply.results]
            rewarded = time.monotonic()
            update = client.update(grpo=recr1.grpo_batch(groups, beta=0.0))
            ended = time.monotonic()
            if not update.applied:
                raise SystemExit(f"bench-loop: the update was not applied: {update.skipped_reason}")
            step = {"seconds": ended - started, "generate_seconds": generated - started,
                    "reward_seconds": rewarded - generated, "update_seconds": ended - rewarded,
                    "server_update_seconds": update.metrics.seconds}
            progress(f"{what}: generate {step['generate_seconds']:.2f} s, update {step['update_seconds']:.2f} s")
            if index > 0:
                steps.append(step)
        prompt_tokens = [len(r.prompt_tokens.ids) for r in reply.results]
        new_tokens = sorted({len(c.token_ids) for r in reply.results for c in r.completions})

    def median(key):
        return round(statistics.median(s[key] for s in steps), 3)

    samples = len(prompts) * args.samples
    out = {"prompts": args.prompts, "prompt_tokens": prompt_tokens, "samples": samples, "new_tokens": new_tokens,
           "training": "lora r16 alpha 32" if args.training == "lora" else "full", "transport": daemon.address.split(":")[0],
           "seconds": median("seconds"), "seconds_each": [round(s["seconds"], 3) for s in steps],
           "generate_seconds": median("generate_seconds"), "reward_seconds": median("reward_seconds"),
           "update_seconds": median("update_seconds"), "server_update_seconds": median("server_update_seconds"),
           "per_sample_seconds": round(statistics.median(s["seconds"] for s in steps) / samples, 4)}
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
