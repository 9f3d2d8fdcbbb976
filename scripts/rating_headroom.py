#!/usr/bin/env python3
"""How much better than the cold-start rule can any rating policy be that reads what the prompt shows?

RecOne's cold start imitates a rule (round(0.4 user mean + 0.6 item mean)); GRPO can only beat that cold start
by what the rule leaves on the table. This measures it without a language model, on a rating data folder:

    rule            the cold-start rule, rounded to the nearest whole number
    thresholds      the same estimate, cut at the four thresholds that minimise MAE on the training split
                    (MAE's best answer is the median rating of each estimate, not its rounding)
    linear          a least-squares fit of the rating on the user's mean, the item's mean, the mean of the
                    history shown and the mean of its movies sharing a genre with the target, then cut at
                    MAE-optimal thresholds: what the whole prompt's numbers allow a simple model

Each is scored on the test split with the paired cluster-bootstrap interval of its difference to the rule
(recr1.recipes.stats, as `recr1 eval` computes them).

    python3 scripts/rating_headroom.py runs/data-rating-1m"""

import argparse
import json
import os

import numpy

from recr1.recipes import coldstart, stats, tasks


def features(data_dir, split, catalogue):
    """(ids, features [1, user mean, item mean, history mean, genre-sharing mean], rule estimate, truth)."""
    records = tasks.read_split(data_dir, split, "rating")
    ids, rows, estimates, truths = [], [], [], []
    for record in records:
        metadata = record["metadata"]
        user = float(metadata["user_mean"])
        item = user if metadata.get("item_mean") is None else float(metadata["item_mean"])
        history = [float(r) for r in metadata.get("history_ratings", [])]
        _, estimate, _, sharing = coldstart.rating_rule(metadata, catalogue)
        ids.append(record["id"])
        rows.append([1.0, user, item, numpy.mean(history) if history else user, user if sharing is None else sharing])
        estimates.append(estimate)
        truths.append(float(metadata["rating"]))
    return ids, numpy.array(rows), numpy.array(estimates), numpy.array(truths)


def cut(values, thresholds):
    return 1 + numpy.sum(values[:, None] > numpy.asarray(thresholds)[None, :], axis=1)


def fit_thresholds(values, truths, grid=numpy.arange(1.0, 5.001, 0.05), sweeps=4):
    """Four increasing thresholds minimising MAE on (values, truths), by coordinate search from rounding's."""
    thresholds = [1.5, 2.5, 3.5, 4.5]
    for _ in range(sweeps):
        for k in range(4):
            best = None
            for v in grid:
                trial = thresholds[:k] + [v] + thresholds[k + 1:]
                if trial != sorted(trial):
                    continue
                mae = numpy.abs(cut(values, trial) - truths).mean()
                if best is None or mae < best[0]:
                    best = (mae, v)
            thresholds[k] = float(best[1])
    return thresholds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="a folder from `recr1 data movielens --task rating`")
    parser.add_argument("--out", help="write the result as JSON here too")
    args = parser.parse_args()
    catalogue = tasks.catalogue_records(args.data)
    _, train_x, train_e, train_y = features(args.data, "train", catalogue)
    ids, test_x, test_e, test_y = features(args.data, "test", catalogue)
    clusters = [stats.user_of(i) for i in ids]

    rule = numpy.clip(numpy.round(test_e), 1, 5)
    thresholds = fit_thresholds(train_e, train_y)
    weights = numpy.linalg.lstsq(train_x, train_y, rcond=None)[0]
    linear_thresholds = fit_thresholds(train_x @ weights, train_y)
    systems = {"rule": rule, "thresholds": cut(test_e, thresholds), "linear": cut(test_x @ weights, linear_thresholds)}
    rule_error = numpy.abs(rule - test_y)
    result = {"data": os.path.abspath(args.data), "test_records": len(ids), "test_users": len(set(clusters)),
              "thresholds": thresholds, "linear_weights": [float(w) for w in weights],
              "linear_thresholds": linear_thresholds, "systems": {}}
    for name, predictions in systems.items():
        error = numpy.abs(predictions - test_y)
        entry = {"mae": float(error.mean()), "distinct_ratings": sorted(int(v) for v in set(predictions)),
                 "changed_from_rule": float(numpy.mean(predictions != rule))}
        if name != "rule":
            entry["minus_rule"] = stats.paired_bootstrap(error, rule_error, clusters)
        result["systems"][name] = entry
        line = f"{name:<11} MAE {entry['mae']:.4f}  ratings {entry['distinct_ratings']}"
        if name != "rule":
            d = entry["minus_rule"]
            line += (f"  changes {entry['changed_from_rule']:.0%} of the rule's answers; minus rule "
                     f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]")
        print(line)
    print(f"({len(ids)} test records of {len(set(clusters))} users; thresholds {', '.join(f'{t:.2f}' for t in thresholds)})")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
