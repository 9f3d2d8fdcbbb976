"""Confidence intervals for `recr1 eval`: is one system really better than another on these users?

Two systems answer the same held-out records, so the comparison is paired: per record, the difference of
their metric (rating: |prediction - truth|, the user's mean standing in for an answer that did not parse;
retrieval: NDCG@10 of the record). A user may hold several records (several targets per user), and their
differences are not independent, so the bootstrap resamples users, not records (a cluster bootstrap):

    for b in 1..B:   draw len(users) users with replacement; diff_b = mean over their records of (a - b)
    CI            =  the (1 - c) / 2 and (1 + c) / 2 quantiles of diff_b     (percentile interval, c = 0.95)

The difference is significant when the interval excludes 0."""

import numpy

RESAMPLES = 2000
CONFIDENCE = 0.95


def record_value(task, row, key):
    """The per-record value of the headline metric key (tasks.headline_metric) of one judged row."""
    if task == "rating":
        if key != "mae_all":
            raise ValueError(f"key: rating rows compare by mae_all, not {key}")
        prediction = row["prediction"] if row.get("prediction") is not None else row["fallback"]
        return abs(float(prediction) - float(row["truth"]))
    return float(row[key])


def user_of(record_id):
    """The user a record belongs to: its id without the last part ("ml-100k/rating/196/39" -> ".../196")."""
    return record_id.rsplit("/", 1)[0] if "/" in record_id else record_id


def paired_bootstrap(a, b, clusters, resamples=RESAMPLES, confidence=CONFIDENCE, seed=0):
    """The mean of a - b over records, with a cluster-bootstrap percentile interval.

    a, b: per-record values of two systems on the same records; clusters: the cluster (user) of each
    record. Returns {"difference", "low", "high", "confidence", "resamples", "clusters", "records"}."""
    a = numpy.asarray(a, dtype=numpy.float64)
    b = numpy.asarray(b, dtype=numpy.float64)
    if a.shape != b.shape or a.ndim != 1 or len(clusters) != len(a):
        raise ValueError(f"a, b, clusters: the same number of records, got {len(a)}, {len(b)}, {len(clusters)}")
    if not len(a):
        raise ValueError("a, b: no records to compare")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: in (0, 1), got {confidence}")
    names = sorted(set(clusters))
    index = {name: i for i, name in enumerate(names)}
    which = numpy.array([index[c] for c in clusters])
    difference = a - b
    # Per cluster: the sum of its differences and its number of records; a resample adds up whole clusters.
    sums = numpy.bincount(which, weights=difference, minlength=len(names))
    counts = numpy.bincount(which, minlength=len(names)).astype(numpy.float64)
    draws = numpy.random.default_rng(seed).integers(0, len(names), size=(resamples, len(names)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - confidence) / 2
    low, high = numpy.quantile(means, [tail, 1 - tail])
    return {"difference": float(difference.mean()), "low": float(low), "high": float(high),
            "confidence": confidence, "resamples": resamples, "clusters": len(names), "records": len(a)}


def verdict(interval, higher_is_better):
    """"better", "worse" or "not significant" for the first system of a paired interval."""
    if interval["low"] > 0:
        return "better" if higher_is_better else "worse"
    if interval["high"] < 0:
        return "worse" if higher_is_better else "better"
    return "not significant"


def compare(task, systems, key, higher_is_better, subject=None, resamples=RESAMPLES, seed=0):
    """Paired comparisons of one system (subject: an index into systems; default the last one) against every
    other: [{"system", "against", "metric", "difference", "low", "high", ..., "verdict"}].
    systems: [{"name", "rows": judged rows in the same record order}]."""
    if not systems:
        return []
    subject = len(systems) - 1 if subject is None else subject
    mine = systems[subject]
    ids = [row["id"] for row in mine["rows"]]
    clusters = [user_of(i) for i in ids]
    a = [record_value(task, row, key) for row in mine["rows"]]
    out = []
    for index, other in enumerate(systems):
        if index == subject:
            continue
        if [row["id"] for row in other["rows"]] != ids:
            raise ValueError(f"systems: '{other['name']}' was judged on other records than '{mine['name']}'")
        b = [record_value(task, row, key) for row in other["rows"]]
        interval = paired_bootstrap(a, b, clusters, resamples=resamples, seed=seed)
        out.append({"system": mine["name"], "against": other["name"], "metric": key, **interval,
                    "verdict": verdict(interval, higher_is_better)})
    return out


def mean_interval(values, clusters, resamples=RESAMPLES, confidence=CONFIDENCE, seed=0):
    """A cluster-bootstrap interval of one system's mean (the chart's error bars): (mean, low, high)."""
    zeros = [0.0] * len(values)
    interval = paired_bootstrap(values, zeros, clusters, resamples=resamples, confidence=confidence, seed=seed)
    return interval["difference"], interval["low"], interval["high"]


def format_comparisons(comparisons, label):
    """The comparisons as text lines: 'A - B: +0.012 [-0.003, +0.027]  not significant'."""
    if not comparisons:
        return ""
    width = max(len(c["against"]) for c in comparisons)
    lines = [f"{label}: {comparisons[0]['system']} minus each other system "
             f"({comparisons[0]['confidence']:.0%} paired bootstrap CI over {comparisons[0]['clusters']} users, "
             f"{comparisons[0]['resamples']} resamples)"]
    for c in comparisons:
        lines.append(f"  vs {c['against']:<{width}}  {c['difference']:+.4f}  [{c['low']:+.4f}, {c['high']:+.4f}]  "
                     f"{c['verdict']}")
    return "\n".join(lines)
