#!/usr/bin/env python3
"""Golden gradients for recr1's backward pass: PyTorch autograd on SmolLM2-135M-Instruct (fp32, eager).

    python3 scripts/reference/make_golden_gradients.py      # writes Tests/RecR1EngineTests/Golden/gradients-smollm2.json

The loss is sum_t c_t * log p(token_t | tokens before it) over the scored tokens of each sequence, with the
coefficients c_t stored in the file (here c_t = -1 / number of scored tokens: the mean negative
log-likelihood of SFT). The engine's contract is the same: it takes dLoss/dlog-prob per token. For a handful
of tensors the file keeps the Frobenius norm of the gradient, its largest entries and fixed random entries
(flat row-major indices into the Hugging Face layout, which is recr1's)."""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_golden as g  # noqa: E402  (sets the offline environment, finds and loads the model)
import torch  # noqa: E402

TENSORS = [
    "model.embed_tokens.weight",            # tied: embedding and output head together
    "model.norm.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.15.self_attn.k_proj.weight",
    "model.layers.29.mlp.down_proj.weight",
]


def main():
    torch.set_num_threads(2)
    directory = g.model_dir()
    tokenizer, model = g.load(directory)
    path = os.path.join(directory, g.MODEL_NAME)

    prompt = g.chat_prompt(tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    p_ids = tokenizer(prompt, add_special_tokens=False).input_ids
    c_ids = tokenizer("The capital of France is Paris.<|im_end|>", add_special_tokens=False).input_ids
    plain = tokenizer("The quick brown fox jumps over the lazy dog, and then it rests.", add_special_tokens=False).input_ids
    sequences = [p_ids + c_ids, plain]
    scored = [[len(p_ids), len(p_ids) + len(c_ids)], [3, len(plain)]]
    count = sum(end - start for start, end in scored)
    coefficient = -1.0 / count

    model.zero_grad()
    total = 0.0
    for ids, (start, end) in zip(sequences, scored):
        logits = model(torch.tensor([ids])).logits[0]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        picked = logprobs[start - 1:end - 1].gather(1, torch.tensor(ids[start:end]).unsqueeze(1)).squeeze(1)
        loss = coefficient * picked.sum()
        loss.backward()
        total += loss.item()

    parameters = dict(model.named_parameters())
    rng = random.Random(0)
    tensors = []
    for name in TENSORS:
        grad = parameters[name].grad.detach().reshape(-1)
        top = torch.topk(grad.abs(), 32).indices.tolist()
        sample = [rng.randrange(grad.numel()) for _ in range(32)]
        indices = sorted(set(top + sample))
        tensors.append({
            "name": name,
            "shape": list(parameters[name].shape),
            "norm": float(grad.norm()),
            "max_abs": float(grad.abs().max()),
            "indices": indices,
            "values": [float(grad[i]) for i in indices],
        })

    head = g.header("gradients", g.sha256_of(path), model)
    g.write("gradients-smollm2.json", {
        "header": head,
        "loss": "sum over scored tokens t of coefficient * log p(token t | tokens before t)",
        "coefficient": coefficient,
        "loss_value": total,
        "sequences": sequences,
        "scored": scored,
        "tensors": tensors,
    })


if __name__ == "__main__":
    main()
