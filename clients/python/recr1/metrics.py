"""Evaluation metrics shared by the reward plugins and by evaluation: NDCG@k, Recall@k, MAE, RMSE and
format compliance.

Ranks are 1-based. NDCG uses linear gains: DCG@k = sum over relevant items ranked within k of
gain / log2(rank + 1), divided by the DCG of the ideal order of the same gains."""

import math


def _check_k(k):
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")


def _as_gains(relevant):
    """{id: gain} from a dict, or gain 1 for each id of a list, set or tuple."""
    if isinstance(relevant, dict):
        return {key: float(gain) for key, gain in relevant.items()}
    return {key: 1.0 for key in relevant}


def dcg(gains_by_rank, k):
    """sum of gain / log2(rank + 1) over the (rank, gain) pairs with rank <= k."""
    _check_k(k)
    return sum(gain / math.log2(rank + 1) for rank, gain in gains_by_rank if rank is not None and rank <= k)


def ideal_dcg(gains, k):
    _check_k(k)
    ordered = sorted((g for g in gains if g > 0), reverse=True)[:k]
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(ordered, start=1))


def ndcg_from_ranks(ranks, relevant, k):
    """NDCG@k when the relevant items sit at the given ranks.

    ranks: {id: 1-based rank, or None when the item was not retrieved}; relevant: {id: gain} or a
    collection of ids (gain 1). 0 when no item has a positive gain."""
    gains = _as_gains(relevant)
    best = ideal_dcg(gains.values(), k)
    if best == 0:
        return 0.0
    return dcg([(ranks.get(key), gain) for key, gain in gains.items()], k) / best


def ndcg_at_k(ranked_ids, relevant, k):
    """NDCG@k of a ranked list of ids (best first) against relevant ({id: gain} or ids, gain 1)."""
    _check_k(k)
    ranks = {}
    for rank, key in enumerate(ranked_ids, start=1):
        ranks.setdefault(key, rank)
    return ndcg_from_ranks(ranks, relevant, k)


def recall_at_k(ranked_ids, relevant, k):
    """The fraction of the relevant ids (those with a positive gain) found in the first k ranked ids."""
    _check_k(k)
    wanted = {key for key, gain in _as_gains(relevant).items() if gain > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(list(ranked_ids)[:k])) / len(wanted)


def recall_from_ranks(ranks, relevant, k):
    _check_k(k)
    wanted = [key for key, gain in _as_gains(relevant).items() if gain > 0]
    if not wanted:
        return 0.0
    return sum(1 for key in wanted if ranks.get(key) is not None and ranks[key] <= k) / len(wanted)


def _pairs(predictions, truths):
    predictions, truths = list(predictions), list(truths)
    if len(predictions) != len(truths):
        raise ValueError(f"predictions: {len(predictions)} values for {len(truths)} truths")
    if not predictions:
        raise ValueError("predictions: empty")
    return predictions, truths


def mae(predictions, truths):
    """Mean absolute error."""
    predictions, truths = _pairs(predictions, truths)
    return sum(abs(p - t) for p, t in zip(predictions, truths)) / len(predictions)


def rmse(predictions, truths):
    """Root mean squared error."""
    predictions, truths = _pairs(predictions, truths)
    return math.sqrt(sum((p - t) ** 2 for p, t in zip(predictions, truths)) / len(predictions))


def format_compliance(flags):
    """The fraction of completions whose format held (flags: booleans)."""
    flags = list(flags)
    if not flags:
        raise ValueError("flags: empty")
    return sum(1 for flag in flags if flag) / len(flags)
