"""Reward functions of the three methods, each importable and runnable as a reward-plugin process:

    rec_r1     Rec-R1: 0.1 + NDCG@k of BM25 with the generated query; -2 when the format does not hold
    reczero    RecZero: format (+1 / -1) + 1 - |rating - truth| / 2
    rlrf4rec   RLRF4Rec: NDCG@k of BM25 with the preference text; dpo_pairs() makes chosen/rejected pairs

    python -m recr1.rewards.rec_r1 ipc:///tmp/rec_r1.sock      or      recr1 reward rec_r1 ipc:///tmp/rec_r1.sock
"""

import importlib

PLUGINS = ("rec_r1", "reczero", "rlrf4rec")


def plugin_main(name, argv=None):
    """Runs the plugin called name (rec_r1, reczero, rlrf4rec; "-" may stand for "_") with argv."""
    module = name.replace("-", "_")
    if module not in PLUGINS:
        raise SystemExit(f"reward: unknown plugin '{name}' (known: {', '.join(PLUGINS)})")
    return importlib.import_module(f"recr1.rewards.{module}").main(argv)
