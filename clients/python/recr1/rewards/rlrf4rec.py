"""RLRF4Rec: the policy writes N texts describing a user's preferences; a recommender scores each; the
best and the worst become a DPO pair (chosen, rejected).

The recommender here is the fixed BM25 over the catalogue: the whole completion (stripped) is the query,
and the reward is NDCG@k of the user's next item.

    reward = NDCG@k(BM25(completion), targets)        (0 for an empty completion)

Metadata: as Rec-R1's ("target" or "targets", "catalogue", optional "k"). Any other plugin can score the
texts instead: dpo_pairs takes rewards from wherever they come (RewardClient(address) for a plugin).

As a plugin:  python -m recr1.rewards.rlrf4rec ADDRESS [--catalogue NAME=FILE] [--k 1000]
         or:  recr1 reward rlrf4rec ADDRESS ..."""

import sys

from recr1.reward import RewardItem
from recr1.rewards import catalogues as catalogues_module
from recr1.rewards import plugin

DEFAULT_K = 1000


def score(completion, index, relevant, k=DEFAULT_K):
    """(reward, details): NDCG@k of the relevant items when the completion is the BM25 query."""
    query = completion.strip()
    ndcg = index.ndcg(query, relevant, k) if query else 0.0
    return ndcg, {"ndcg": ndcg}


class PreferenceReward:
    """The reward function of a plugin: a list of RewardItem in, (reward, details) per item out."""

    def __init__(self, catalogues, k=DEFAULT_K):
        self.catalogues = catalogues
        self.k = k

    def __call__(self, items):
        checked = []
        for i, item in enumerate(items):
            metadata = plugin.metadata_of(item, i)
            index = self.catalogues.for_item(metadata, i)
            relevant = catalogues_module.targets(metadata, i, index.catalogue)
            checked.append((item.completion, index, relevant, plugin.positive_int(metadata, i, "k", self.k)))
        return [score(*args) for args in checked]


def _value(result):
    """The reward of a reward function's entry: a float, None, or (float, details)."""
    if result is None:
        return None
    if isinstance(result, (tuple, list)):
        result = result[0]
    return float(result)


def best_and_worst(rewards):
    """(index of the best, index of the worst) among the rewards that are not None (first one on ties),
    or None when fewer than two are scored or best and worst are equal."""
    scored = [(value, i) for i, value in enumerate(rewards) if value is not None]
    if len(scored) < 2:
        return None
    best = max(scored, key=lambda pair: (pair[0], -pair[1]))
    worst = min(scored, key=lambda pair: (pair[0], pair[1]))
    if best[0] == worst[0]:
        return None
    return best[1], worst[1]


def score_completions(scorer, record, completions):
    """The rewards of one prompt record's completions (None where unscored). scorer: a reward function
    (PreferenceReward, RewardClient(address), any callable of a list of RewardItem)."""
    messages = record.get("messages") or []
    items = [RewardItem(record.get("prompt", ""), text, record.get("metadata", {}), messages,
                        f"{record.get('id', '')}#{n}") for n, text in enumerate(completions)]
    results = list(scorer(items))
    if len(results) != len(items):
        raise ValueError(f"scorer: {len(results)} results for {len(items)} completions")
    return [_value(r) for r in results]


def dpo_pair(record, completions, rewards):
    """The DPO pair of one prompt record, or None (a tie, or fewer than two scored completions):

        {"id", "messages" (or "prompt"), "chosen", "rejected", "chosen_reward", "rejected_reward", "metadata"}"""
    if len(completions) != len(rewards):
        raise ValueError(f"rewards: {len(rewards)} values for {len(completions)} completions")
    picked = best_and_worst(rewards)
    if picked is None:
        return None
    best, worst = picked
    pair = {"id": record.get("id", "")}
    for key in ("messages", "prompt"):
        if key in record:
            pair[key] = record[key]
    pair.update({"chosen": completions[best], "rejected": completions[worst], "chosen_reward": rewards[best],
                 "rejected_reward": rewards[worst], "metadata": record.get("metadata", {})})
    return pair


def dpo_pairs(records, completions, scorer):
    """DPO pairs from prompt records and their N completions each (completions[i] belongs to records[i]),
    scored by scorer; groups without a pair (ties) are skipped."""
    records, completions = list(records), list(completions)
    if len(records) != len(completions):
        raise ValueError(f"completions: {len(completions)} groups for {len(records)} records")
    out = []
    for record, texts in zip(records, completions):
        pair = dpo_pair(record, texts, score_completions(scorer, record, texts))
        if pair is not None:
            out.append(pair)
    return out


def main(argv=None):
    args = plugin.parser("rlrf4rec", "RLRF4Rec reward plugin: NDCG@k of BM25 with the preference text as the "
                         "query.", k=DEFAULT_K).parse_args(argv)
    catalogues = catalogues_module.from_args(args)
    return plugin.serve("rlrf4rec", PreferenceReward(catalogues, args.k), args, prepare=catalogues.prepare)


if __name__ == "__main__":
    sys.exit(main())
