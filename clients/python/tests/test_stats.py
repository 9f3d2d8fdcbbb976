"""The paired cluster bootstrap behind `recr1 eval`'s intervals, on values whose answer is known."""

import numpy
import pytest

from recr1.recipes import stats


def test_identical_systems_differ_by_exactly_zero():
    a = [0.1, 0.5, 0.9, 0.3]
    out = stats.paired_bootstrap(a, list(a), ["u1", "u1", "u2", "u3"])
    assert out["difference"] == out["low"] == out["high"] == 0.0
    assert out["clusters"] == 3 and out["records"] == 4


def test_a_constant_shift_is_the_whole_interval():
    rng = numpy.random.default_rng(3)
    b = rng.normal(size=50)
    out = stats.paired_bootstrap(b + 0.25, b, [f"u{i}" for i in range(50)])
    assert out["difference"] == pytest.approx(0.25)
    assert out["low"] == pytest.approx(0.25) and out["high"] == pytest.approx(0.25)


def test_interval_width_matches_the_normal_theory():
    # 400 independent differences with sd 1: the 95% interval is about +-1.96 / sqrt(400) = +-0.098 wide.
    rng = numpy.random.default_rng(7)
    d = rng.normal(0.2, 1.0, size=400)
    out = stats.paired_bootstrap(d, numpy.zeros(400), [str(i) for i in range(400)], resamples=4000)
    half = (out["high"] - out["low"]) / 2
    assert half == pytest.approx(1.96 * d.std() / 20, rel=0.12)
    assert out["low"] < d.mean() < out["high"]


def test_records_repeated_within_a_user_add_no_confidence():
    # A cluster bootstrap resamples users: copying each user's record 4 times must leave the interval as it
    # was (a record bootstrap would shrink it by half).
    rng = numpy.random.default_rng(11)
    d = rng.normal(0.1, 1.0, size=60)
    users = [f"u{i}" for i in range(60)]
    once = stats.paired_bootstrap(d, numpy.zeros(60), users, seed=5)
    four = stats.paired_bootstrap(numpy.repeat(d, 4), numpy.zeros(240), numpy.repeat(users, 4).tolist(), seed=5)
    assert four["low"] == pytest.approx(once["low"]) and four["high"] == pytest.approx(once["high"])
    naive = stats.paired_bootstrap(numpy.repeat(d, 4), numpy.zeros(240), [str(i) for i in range(240)], seed=5)
    assert naive["high"] - naive["low"] < 0.7 * (four["high"] - four["low"])


def test_verdicts_respect_the_direction_of_the_metric():
    better_if_higher = {"low": 0.01, "high": 0.05}
    assert stats.verdict(better_if_higher, True) == "better"
    assert stats.verdict(better_if_higher, False) == "worse"          # an error 0.01-0.05 larger
    assert stats.verdict({"low": -0.05, "high": -0.01}, False) == "better"
    assert stats.verdict({"low": -0.01, "high": 0.02}, True) == "not significant"


def test_rating_rows_use_the_fallback_when_no_rating_parsed():
    row = {"id": "ml/rating/7/3", "prediction": None, "fallback": 3.5, "truth": 5.0}
    assert stats.record_value("rating", row, "mae_all") == 1.5
    assert stats.record_value("rating", dict(row, prediction=4.0), "mae_all") == 1.0
    assert stats.user_of("ml-100k/rating/7/3") == "ml-100k/rating/7"


def test_compare_pairs_the_subject_with_every_other_system():
    rows = lambda values: [{"id": f"d/seqrec/{i // 2}/{i}", "ndcg@10": v} for i, v in enumerate(values)]
    systems = [{"name": "zero", "rows": rows([0.0] * 8)}, {"name": "trained", "rows": rows([1.0, 0.0] * 4)},
               {"name": "same", "rows": rows([1.0, 0.0] * 4)}]
    out = stats.compare("seqrec", systems, "ndcg@10", True, subject=1, resamples=500)
    assert [c["against"] for c in out] == ["zero", "same"]
    assert out[0]["difference"] == pytest.approx(0.5) and out[0]["verdict"] == "better"
    assert out[1]["verdict"] == "not significant" and out[1]["clusters"] == 4
    text = stats.format_comparisons(out, "NDCG@10")
    assert "vs zero" in text and "better" in text
    systems[2]["rows"] = systems[2]["rows"][::-1]
    with pytest.raises(ValueError, match="other records"):
        stats.compare("seqrec", systems, "ndcg@10", True, subject=1)


def test_bad_shapes_and_confidence_are_refused():
    with pytest.raises(ValueError, match="same number"):
        stats.paired_bootstrap([1.0, 2.0], [1.0], ["a", "b"])
    with pytest.raises(ValueError, match="confidence"):
        stats.paired_bootstrap([1.0], [1.0], ["a"], confidence=1.5)
