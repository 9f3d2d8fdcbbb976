"""The three published methods as recipes that drive recr1d from Python (generate -> reward -> update):

    recr1 run rec-r1-seqrec --out runs/seqrec          Rec-R1, GRPO on BM25 NDCG, MovieLens next item
    recr1 run rec-r1-search --esci shop.csv --out ...   Rec-R1, GRPO on BM25 NDCG, product search
    recr1 run reczero --out runs/reczero                RecZero, GRPO on the think-then-rate reward
    recr1 run recone --out runs/recone                  RecOne, SFT cold start, then RecZero's GRPO
    recr1 run rlrf4rec --out runs/rlrf4rec              RLRF4Rec, best/worst of N -> DPO
    recr1 eval --run runs/reczero                       held-out users: no-LLM baseline, base model, trained

Each recipe's defaults are the paper's settings scaled to a 2-core machine and SmolLM2-135M; docs/recipes.md
sets them side by side."""

import dataclasses

TASKS = ("seqrec", "search", "rating", "preference")
# Generation stops once the answer's closing tag is written, as R1-style trainers stop at </answer>: what
# follows it could only break the format. The reward sees the completion with the tag.
STOP_STRINGS = {"seqrec": ("</answer>",), "search": ("</answer>",), "rating": ("</rate>",), "preference": ()}


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    task: str               # seqrec, search, rating, preference (recr1.recipes.tasks)
    algorithm: str          # grpo or dpo
    summary: str
    defaults: dict          # the scaled settings; every key is a `recr1 run` option
    paper: dict             # the paper's settings, as text, for the docs and --help


GRPO_DEFAULTS = {
    "steps": 8, "prompts_per_step": 2, "group_size": 4, "learning_rate": 5e-4, "beta": 0.001, "clip": 0.2,
    "kl": "k3", "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 96, "history": 5, "reward_k": 1000,
    "checkpoint_every": 4, "keep_flat_groups": False, "cold_start_steps": 0, "cold_start_prompts": 32,
    "cold_start_samples": 2, "cold_start_batch": 4, "cold_start_learning_rate": 1e-3,
    "aggregation": "token_mean", "objective": "grpo", "scaling": "group", "entropy_coefficient": 0.0, "targets_per_user": 1,
    "eval_every": 0, "eval_users": 64, "reference": "start",
}

REC_R1_PAPER = {
    "group size": "12", "prompts per step": "32",
    "learning rate": "1e-6", "KL": "k3, beta 0.001", "clip": "0.2", "temperature / top-p": "0.6 / 0.95",
    "max tokens (prompt / response)": "256 / 512", "NDCG cut-off in training": "1000",
}

RECIPES = {
    "rec-r1-seqrec": Recipe(
        "rec-r1-seqrec", "seqrec", "grpo",
        "Rec-R1 on MovieLens-100K: the policy writes a BM25 query for the user's next movie from the last "
        "titles; reward 0.1 + NDCG@1000 when <think>...</think><answer>{\"query\": ...}</answer> holds, -2 otherwise",
        dict(GRPO_DEFAULTS), REC_R1_PAPER),
    "rec-r1-search": Recipe(
        "rec-r1-search", "search", "grpo",
        "Rec-R1 on an ESCI-format product-search file: the policy rewrites the shopper's query for BM25; same "
        "reward and format as rec-r1-seqrec",
        dict(GRPO_DEFAULTS), REC_R1_PAPER),
    "reczero": Recipe(
        "reczero", "rating", "grpo",
        "RecZero on MovieLens-100K: think (<analyze user>, <analyze item>, <match>) then <rate>N</rate>; "
        "reward = format (+1/-1) + 1 - |N - truth| / 2",
        dict(GRPO_DEFAULTS, temperature=0.8, top_p=1.0, history=3, cold_start_rounding="nearest"),
        {"template": "<analyze user> <analyze item> <match> <rate>", "reward": "format +-1 plus 1 - |error| / 2",
         "history": "at most 10 rated items, the user's and the item's mean ratings"}),
    "recone": Recipe(
        "recone", "rating", "grpo",
        "RecOne: SFT on cold-start answers (best-of-N base-model samples that score >= 1.5 under the RecZero "
        "reward, else rule-written answers that do), then RecZero's GRPO",
        # recone-h (docs/results.md, 2026-12-04): 56 SFT steps on 436 rule-written answers of 512 prompts (the
        # base model never holds the format, so no best-of-N), then 12 GRPO steps of 8 prompts x 8 samples at
        # lr 2e-4, beta 0, temperature 1.0; 33 minutes here; MAE 0.809 on 384 test targets, below both means.
        # beta 0.1 towards the cold start (the reference, --reference start): without it GRPO collapsed onto
        # answering 4 on ML-1M (recone-i, recone-j); with it the policy held its cold start (recone-k).
        dict(GRPO_DEFAULTS, temperature=1.0, top_p=1.0, history=3, targets_per_user=4, steps=12, prompts_per_step=8,
             group_size=8, learning_rate=2e-4, beta=0.1, cold_start_steps=56, cold_start_prompts=512,
             cold_start_samples=0, cold_start_batch=8, cold_start_rounding="nearest", eval_every=6, eval_users=96,
             checkpoint_every=6),
        {"cold start": "SFT on cold-start reasoning samples", "RL": "RecZero's GRPO"}),
    "rlrf4rec": Recipe(
        "rlrf4rec", "preference", "dpo",
        "RLRF4Rec on MovieLens-100K: N preference texts per user, scored by BM25 NDCG@1000 of the next movie "
        "with the text as the query; best and worst -> DPO (sigmoid, beta 0.1)",
        {k: v for k, v in dict(GRPO_DEFAULTS, samples=4, beta=0.1, temperature=1.0, top_p=1.0, max_new_tokens=64,
                                learning_rate=5e-4).items()
         if k not in ("group_size", "clip", "kl", "keep_flat_groups", "aggregation", "objective", "scaling",
                      "entropy_coefficient")},
        {"candidates per user": "N (the brief: best and worst of N)", "loss": "DPO, sigmoid", "beta": "about 0.1"}),
}

__all__ = ["Recipe", "RECIPES", "TASKS", "STOP_STRINGS"]
