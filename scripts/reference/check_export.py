"""Checks a directory that `recr1d` exported (Export, merged) against the daemon that exported it:
transformers loads it, and its per-token log-probs must match recr1d's Score within a tolerance.
Optionally checks a PEFT adapter export the same way (peft applied to the base GGUF).

    python scripts/reference/check_export.py --address ipc:///... --export DIR [--peft DIR --base-gguf FILE]

Needs the reference environment (scripts/reference/setup.sh: torch, transformers; peft for --peft).
Prints JSON with the largest absolute difference."""

import argparse
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import recr1

PAIRS = [
    ([{"role": "user", "content": "What is the capital of France?"}], "The capital of France is Paris."),
    ([{"role": "user", "content": "Name a fruit."}], "An apple is a fruit, and so is a banana."),
    ("Once upon a time", " there was a small robot who loved to read."),
    ([{"role": "user", "content": "Rate the movie Toy Story (1995) from 1 to 5."}], "<think>Classic.</think> <rate>5</rate>"),
]


def torch_logprobs(model, prompt_ids, completion_ids):
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    start = len(prompt_ids)
    return [logp[start + i - 1, token].item() for i, token in enumerate(completion_ids)]


def compare(model, client, tokenizer=None):
    worst = 0.0
    replies = client.score(PAIRS, which="policy").results
    prompts = [client.apply_chat_template([p]).tokens[0].ids if isinstance(p, list) else client.tokenize([p], add_special_tokens=True)[0]
               for p, _ in PAIRS]
    for (prompt, completion), prompt_ids, result in zip(PAIRS, prompts, replies):
        completion_ids = list(result.completion_token_ids)
        if tokenizer is not None:
            assert tokenizer(completion, add_special_tokens=False)["input_ids"] == completion_ids, completion
        ours = list(result.policy_logprobs)
        theirs = torch_logprobs(model, list(prompt_ids), completion_ids)
        worst = max(worst, max(abs(a - b) for a, b in zip(ours, theirs)))
    return worst


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--export", required=True)
    parser.add_argument("--peft")
    parser.add_argument("--base-gguf")
    args = parser.parse_args()
    torch.set_num_threads(2)
    result = {}
    with recr1.PolicyClient(args.address, timeout=300) as client:
        model = AutoModelForCausalLM.from_pretrained(args.export, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(args.export)
        result["merged_max_abs_logprob_diff"] = compare(model, client, tokenizer)
        if args.peft:
            import os
            from peft import PeftModel
            base = AutoModelForCausalLM.from_pretrained(os.path.dirname(args.base_gguf),
                                                        gguf_file=os.path.basename(args.base_gguf), dtype=torch.float32)
            peft_model = PeftModel.from_pretrained(base, args.peft)
            result["peft_max_abs_logprob_diff"] = compare(peft_model, client)
    print(json.dumps(result))
    return 0 if all(v < 1e-3 for v in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
