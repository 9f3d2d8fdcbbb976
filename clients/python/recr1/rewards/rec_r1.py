"""Rec-R1's reward: the policy writes a search query; a fixed BM25 retrieves with it; the reward is
0.1 + NDCG@k of the relevant item(s) when the answer format holds, -2 when it does not.

    reward = 0.1 + NDCG@k(BM25(query), targets)   when the completion is
                                                  <think>…</think><answer>{"query": "…"}</answer>
           = -2                                   otherwise

Metadata of an item: "target" (an item id) or "targets" ([ids] or {id: gain}); "catalogue" (a name the
plugin knows; default: its --default-catalogue); "k" (optional; default --k, 1000 as in training).

As a plugin:  python -m recr1.rewards.rec_r1 ADDRESS [--catalogue NAME=FILE] [--k 1000]
         or:  recr1 reward rec_r1 ADDRESS ..."""

import sys

from recr1.rewards import catalogues as catalogues_module
from recr1.rewards import plugin
from recr1.rewards.formats import parse_rec_r1

FORMAT_BONUS = 0.1
FORMAT_PENALTY = -2.0
DEFAULT_K = 1000


def score(completion, index, relevant, k=DEFAULT_K):
    """(reward, details) of one completion against a BM25Index and the relevant {id: gain} or ids."""
    parsed = parse_rec_r1(completion)
    if not parsed.ok:
        return FORMAT_PENALTY, {"format": 0.0, "ndcg": 0.0}
    ndcg = index.ndcg(parsed.value, relevant, k)
    return FORMAT_BONUS + ndcg, {"format": 1.0, "ndcg": ndcg}


class RecR1Reward:
    """The reward function of a plugin: a list of RewardItem in, (reward, details) per item out."""

    def __init__(self, catalogues, k=DEFAULT_K):
        self.catalogues = catalogues
        self.k = k

    def __call__(self, items):
        checked = []
        for i, item in enumerate(items):  # every item's metadata is checked before any is scored
            metadata = plugin.metadata_of(item, i)
            index = self.catalogues.for_item(metadata, i)
            relevant = catalogues_module.targets(metadata, i, index.catalogue)
            checked.append((item.completion, index, relevant, plugin.positive_int(metadata, i, "k", self.k)))
        return [score(*args) for args in checked]


def main(argv=None):
    args = plugin.parser("rec_r1", "Rec-R1 reward plugin: 0.1 + NDCG@k of BM25 with the generated query, "
                         "-2 when the format does not hold.", k=DEFAULT_K).parse_args(argv)
    catalogues = catalogues_module.from_args(args)
    reward = RecR1Reward(catalogues, args.k)
    return plugin.serve("rec_r1", reward, args, prepare=catalogues.prepare)


if __name__ == "__main__":
    sys.exit(main())
