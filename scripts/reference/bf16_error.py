#!/usr/bin/env python3
"""PyTorch's own bf16 error on recr1's parity set: how far bf16 log-probs land from fp32 ones.

    python3 scripts/reference/bf16_error.py   # writes Tests/RecR1EngineTests/Golden/bf16-reference-smollm2.json

A yardstick for the engine's bf16 paths: an engine error of the same size as PyTorch's is bf16 itself,
not a bug. The model is SmolLM2-135M-Instruct loaded as make_golden.py loads it (GGUF dequantised to fp32,
eager attention, 2 threads). Inputs are the 27 prompt/completion pairs of logprobs-smollm2.json and the
5 prompts of greedy-smollm2.json, token ids as stored there (no tokenizer is involved).

Teacher-forced log-probs (one forward over prompt_ids + completion_ids, as make_golden.py) in three modes:

  fp32       the plain fp32 model. Checked against the golden logprobs: |diff| <= 1e-4 for every token,
             else the script stops. The errors below are measured against this run, not the rounded golden.
  autocast   the same fp32 model under torch.autocast("cpu", dtype=torch.bfloat16): the standard CPU
             mixed precision. Weights stay fp32; autocast casts the inputs of matmuls/linears to bf16
             (so each linear runs in bf16 and returns bf16), while ops on its fp32 list run in fp32.
  bf16       a second copy of the model cast with model.to(torch.bfloat16): bf16 weights and activations
             everywhere (norms, softmax, residual stream, KV).

In every mode the logits are converted to fp32 before log_softmax (the same rule as make_golden.py and
bench_torch.py), so the error measured is the network's, not that of a bf16 log_softmax.

Summary per mode, over all completion tokens of all pairs: max, p99, p90 and mean of
|logprob_mode - logprob_fp32| (percentiles by linear interpolation between order statistics, as
numpy.percentile's default), plus the same for each pair's summed log-prob.

Greedy: each greedy-smollm2.json prompt decoded with model.generate(do_sample=False), the golden's
max_new_tokens, stopping after <|im_end|>, under autocast (and, for comparison, with the bf16 copy), and
compared with the golden fp32 tokens. Per case: first_diff_index (first step whose token differs from
fp32's, or null when all agree), and at that step, from one fp32 forward over prompt_ids + the common
prefix, fp32_logit_gap = fp32 logit of fp32's token minus fp32 logit of the mode's token (>= 0; small means
a near-tie that bf16 rounding can flip), next to the golden top-1/top-2 margin at that step.

The file holds, per pair, the name and both modes' log-probs; the summary (also printed to stdout as
JSON; progress goes to stderr) holds the statistics and the torch/transformers versions. About 1 minute
on 2 cores. Deterministic for a given torch build and thread count.
"""

import argparse
import importlib.metadata
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_golden as g  # noqa: E402  (sets the offline environment, finds and loads the model)
import torch  # noqa: E402

FP32_TOLERANCE = 1e-4
OUTPUT = "bf16-reference-smollm2.json"
MODES = ("autocast", "bf16")


def log(message):
    print(f"bf16_error: {message}", file=sys.stderr, flush=True)


def read_golden(name):
    with open(os.path.join(g.GOLDEN_DIR, name), encoding="utf-8") as f:
        return json.load(f)


def autocast_context():
    return torch.autocast("cpu", dtype=torch.bfloat16)


class NoContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@torch.no_grad()
def teacher_forced(model, prompt_ids, completion_ids, context):
    """fp32 log-prob of each completion token (position t predicts token t + 1)."""
    with context():
        logits = model(torch.tensor([prompt_ids + completion_ids])).logits[0]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    start = len(prompt_ids) - 1
    positions = torch.arange(start, start + len(completion_ids))
    return log_probs[positions, torch.tensor(completion_ids)].double()


def stats(errors):
    """max, p99, p90, mean of a 1-D tensor of absolute errors."""
    e = errors.double()
    return {
        "count": int(e.numel()),
        "max": float(e.max()),
        "p99": float(torch.quantile(e, 0.99)),
        "p90": float(torch.quantile(e, 0.90)),
        "mean": float(e.mean()),
    }


def sig(summary, digits=3):
    """Round a stats dict's floats to `digits` significant figures, for a readable file."""
    return {k: (float(f"{v:.{digits}g}") if isinstance(v, float) else v) for k, v in summary.items()}


@torch.no_grad()
def greedy(model, prompt_ids, max_new_tokens, eos_id, context):
    with context():
        out = model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_id,
            pad_token_id=eos_id,
        )
    return out[0, len(prompt_ids):].tolist()


@torch.no_grad()
def compare_greedy(fp32_model, case, tokens):
    reference = case["generated_ids"]
    first = next((i for i, (a, b) in enumerate(zip(reference, tokens)) if a != b), None)
    if first is None and len(reference) != len(tokens):
        first = min(len(reference), len(tokens))  # one stopped where the other did not (cannot happen with EOS)
    entry = {
        "question": case["question"],
        "fp32_tokens": len(reference),
        "tokens": len(tokens),
        "first_diff_index": first,
    }
    if first is not None and first < len(reference) and first < len(tokens):
        prefix = case["prompt_ids"] + reference[:first]
        logits = fp32_model(torch.tensor([prefix])).logits[0, -1].float()
        chosen, other = reference[first], tokens[first]
        entry.update({
            "fp32_token": chosen,
            "mode_token": other,
            "fp32_logit_gap": round(float(logits[chosen] - logits[other]), 5),
            "golden_top1_top2_margin": case["top1_top2_margins"][first],
            "fp32_argmax_is_golden_token": int(logits.argmax()) == chosen,
        })
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the goldens use 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    directory = g.model_dir()
    model_sha = g.sha256_of(os.path.join(directory, g.MODEL_NAME))
    logprobs_golden = read_golden("logprobs-smollm2.json")
    greedy_golden = read_golden("greedy-smollm2.json")
    g.check(logprobs_golden["header"]["model_sha256"] == model_sha, "logprobs golden was made from another model file")

    log("loading the fp32 model")
    _, model = g.load(directory)
    log("loading a second copy for pure bf16")
    _, model_bf16 = g.load(directory)
    model_bf16.to(torch.bfloat16)
    runs = {"autocast": (model, autocast_context), "bf16": (model_bf16, NoContext)}

    pairs, errors, total_errors = [], {m: [] for m in MODES}, {m: [] for m in MODES}
    worst_fp32 = 0.0
    for pair in logprobs_golden["pairs"]:
        p, c = pair["prompt_ids"], pair["completion_ids"]
        fp32 = teacher_forced(model, p, c, NoContext)
        drift = float((fp32 - torch.tensor(pair["logprobs"], dtype=torch.float64)).abs().max())
        worst_fp32 = max(worst_fp32, drift)
        g.check(drift <= FP32_TOLERANCE, f"{pair['name']}: fp32 differs from the golden by {drift:.2e}")
        entry = {"name": pair["name"], "tokens": len(c)}
        for mode in MODES:
            mode_model, context = runs[mode]
            lp = teacher_forced(mode_model, p, c, context)
            errors[mode].append((lp - fp32).abs())
            total_errors[mode].append(abs(float(lp.sum() - fp32.sum())))
            entry[f"{mode}_logprobs"] = g.rounded(lp, 6)
            entry[f"{mode}_max_abs_error"] = float(f"{float((lp - fp32).abs().max()):.3g}")
        pairs.append(entry)
        log(f"{pair['name']}: {len(c)} tokens, max |err| autocast {entry['autocast_max_abs_error']:.3g}, "
            f"bf16 {entry['bf16_max_abs_error']:.3g}")

    log("greedy decoding")
    greedy_cases = {m: [] for m in MODES}
    for case in greedy_golden["cases"]:
        for mode in MODES:
            mode_model, context = runs[mode]
            tokens = greedy(mode_model, case["prompt_ids"], greedy_golden["max_new_tokens"],
                            greedy_golden["eos_id"], context)
            greedy_cases[mode].append(compare_greedy(model, case, tokens))
        log(f"{case['question']!r}: first diff autocast {greedy_cases['autocast'][-1]['first_diff_index']}, "
            f"bf16 {greedy_cases['bf16'][-1]['first_diff_index']}")

    summary = {
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "torch_threads": torch.get_num_threads(),
        "attn_implementation": model.config._attn_implementation,
        "pairs": len(pairs),
        "tokens": sum(p["tokens"] for p in pairs),
        "fp32_vs_golden_max_abs": float(f"{worst_fp32:.3g}"),
    }
    for mode in MODES:
        summary[mode] = {
            "token_abs_error": sig(stats(torch.cat(errors[mode]))),
            "sequence_total_abs_error": sig(stats(torch.tensor(total_errors[mode]))),
        }
    summary["greedy_max_new_tokens"] = greedy_golden["max_new_tokens"]
    summary["greedy_autocast"] = greedy_cases["autocast"]
    summary["greedy_bf16"] = greedy_cases["bf16"]

    head = g.header("bf16-reference", model_sha, model)
    head = dict(head, generator="scripts/reference/bf16_error.py", compute_dtype=(
        "float32 reference; measured: bfloat16 autocast (fp32 weights) and bfloat16 weights+activations"), notes=(
        "Teacher-forced log-probs of logprobs-smollm2.json's completions (same pairs, same order) under "
        "torch.autocast('cpu', bfloat16) with fp32 weights (autocast_logprobs) and with the model cast to "
        "bfloat16 (bf16_logprobs); logits converted to fp32 before log_softmax in both. *_max_abs_error and "
        "the summary's errors are |mode - fp32| against this script's own fp32 run (which matches the golden "
        f"within {FP32_TOLERANCE:g}). Percentiles interpolate linearly. greedy_*: first step where the mode's "
        "greedy decode leaves fp32's (null: never), and the fp32 logit gap between the two tokens there."
    ))
    path = os.path.join(g.GOLDEN_DIR, OUTPUT)
    text = g.to_json({"header": head, "summary": summary, "pairs": pairs}) + "\n"
    json.loads(text)  # it must parse back
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    log(f"wrote {os.path.relpath(path, g.REPO_ROOT)} ({os.path.getsize(path)} bytes)")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
