"""Prompt records from MovieLens, one JSON object per JSONL line:

    {"id": "ml-100k/seqrec/196/39", "messages": [{"role": "user", "content": "…"}], "metadata": {…}}

For each user (users split into train / validation / test by split.py), in time order, the last
`targets_per_user` positions of the user's sequence become targets; the history is what came before
(the last `history` items of it, the target itself left out). The metadata is what the reward plugins read."""

from recr1.data import prompts
from recr1.data.split import SPLITS, split_of

TASKS = ("seqrec", "rating", "preference")


def _check_counts(history, targets_per_user, min_history):
    for name, value, low in (("history", history, 1), ("targets_per_user", targets_per_user, 1),
                             ("min_history", min_history, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: an integer >= {low}, got {value!r}")


def _targets(sequence, history, targets_per_user, min_history):
    """(position, target Rating, history Ratings) for the last targets_per_user positions that have at
    least min_history earlier ratings."""
    first = max(min_history, len(sequence) - targets_per_user)
    for position in range(first, len(sequence)):
        target = sequence[position]
        before = [r for r in sequence[:position] if r.item != target.item]
        if len(before) >= min_history:
            yield position, target, before[-history:], before


def _item_means_before(data):
    """{rating.order: (sum, count)} of the ratings of the same item strictly earlier in time (any user):
    what the system knew about the item when the user rated it."""
    totals, known = {}, {}
    ordered = sorted(data.ratings, key=lambda r: (r.timestamp, r.order))
    start = 0
    while start < len(ordered):
        end = start
        while end < len(ordered) and ordered[end].timestamp == ordered[start].timestamp:
            end += 1
        for rating in ordered[start:end]:
            known[rating.order] = totals.get(rating.item, (0.0, 0))
        for rating in ordered[start:end]:
            total, count = totals.get(rating.item, (0.0, 0))
            totals[rating.item] = (total + rating.rating, count + 1)
        start = end
    return known


def build(data, task, seed=0, fractions=(0.8, 0.1, 0.1), history=10, targets_per_user=1, min_history=1):
    """{"train": [record, …], "validation": […], "test": […]} for task "seqrec", "rating" or "preference"."""
    if task not in TASKS:
        raise ValueError(f"task: one of {', '.join(TASKS)}, got '{task}'")
    _check_counts(history, targets_per_user, min_history)
    item_stats = _item_means_before(data) if task == "rating" else None
    out = {name: [] for name in SPLITS}
    for user, sequence in data.sequences().items():
        split = split_of(user, seed, fractions)
        for position, target, shown, before in _targets(sequence, history, targets_per_user, min_history):
            item = data.items[target.item]
            metadata = {"task": task, "dataset": data.name, "split": split, "user": user,
                        "history": [r.item for r in shown], "timestamp": target.timestamp}
            if task == "rating":
                user_mean = sum(r.rating for r in before) / len(before)
                total, count = item_stats[target.order]
                item_mean = total / count if count else None
                messages = prompts.rating_messages([(data.items[r.item], r.rating) for r in shown], user_mean,
                                                   len(before), item, item_mean, count)
                metadata.update({"item": item.id, "item_title": item.label, "rating": target.rating,
                                 "history_ratings": [r.rating for r in shown], "user_mean": round(user_mean, 4),
                                 "item_mean": None if item_mean is None else round(item_mean, 4),
                                 "item_count": count})
            else:
                history_items = [data.items[r.item] for r in shown]
                build_messages = prompts.seqrec_messages if task == "seqrec" else prompts.preference_messages
                messages = build_messages(history_items)
                metadata.update({"catalogue": data.name, "target": item.id, "target_title": item.label})
            out[split].append({"id": f"{data.name}/{task}/{user}/{position}", "messages": messages,
                               "metadata": metadata})
    return out
