"""The general-ability probe: the shipped questions, the answer matcher and the scoring."""

import json
import re

import pytest

from recr1.recipes import probe


@pytest.fixture(scope="module")
def shipped():
    return probe.load_questions()


def write_lines(tmp_path, records):
    path = tmp_path / "questions.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


GOOD = {"id": "q1", "category": "c", "question": "What is 2 plus 2?", "answers": ["4", "four"]}


# The shipped file.

def test_shipped_file_loads_with_enough_questions_and_categories(shipped):
    assert len(shipped) >= 100
    ids = [q["id"] for q in shipped]
    assert len(set(ids)) == len(ids)
    assert len({q["category"] for q in shipped}) >= 8


def test_shipped_file_has_one_question_a_line():
    with open(probe.QUESTIONS_PATH, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 120
    assert all(line.strip() for line in lines)


def test_echoing_the_question_never_scores(shipped):
    # A model that repeats the question must not be marked correct: no answer hides in its question.
    for q in shipped:
        assert not probe.is_correct(q["question"], q["answers"]), q["id"]


def test_numeric_answers_also_accept_the_word(shipped):
    for q in shipped:
        if any(re.fullmatch(r"[\d,]+", a) for a in q["answers"]):
            assert any(re.search(r"[a-z]", a) for a in q["answers"]), q["id"]


def test_messages_asks_for_a_short_answer(shipped):
    turn = probe.messages(shipped[0])
    assert turn == [{"role": "user", "content": shipped[0]["question"] + " Answer in a few words."}]


# The matcher.

def test_a_word_in_a_sentence_counts():
    assert probe.is_correct("The capital of France is Paris.", ["Paris"])
    assert probe.is_correct("PARIS", ["Paris"])
    assert probe.is_correct("paris, of course", ["Paris"])


def test_a_word_inside_another_word_does_not_count():
    assert not probe.is_correct("Parisian food is great.", ["Paris"])
    assert not probe.is_correct("The plural is women.", ["men"])


def test_numbers_match_whole_numbers_only():
    answers = ["4", "four"]
    assert probe.is_correct("four", answers)
    assert probe.is_correct("It is 4.", answers)
    assert probe.is_correct("2 + 2 = 4", answers)
    assert probe.is_correct("Four!", answers)
    assert not probe.is_correct("14", answers)
    assert not probe.is_correct("4.5", answers)
    assert not probe.is_correct("0.4", answers)
    assert not probe.is_correct("4,000", answers)
    assert not probe.is_correct("fourteen", answers)
    assert not probe.is_correct("", answers)
    assert not probe.is_correct(None, answers)


def test_multi_word_answers_and_whitespace():
    answers = ["William Shakespeare", "Shakespeare"]
    assert probe.is_correct("William Shakespeare wrote it", answers)
    assert probe.is_correct("william   SHAKESPEARE\nwrote it", ["William Shakespeare"])
    assert probe.is_correct("It was William\n Shakespeare.", ["William Shakespeare"])
    assert not probe.is_correct("William Wordsworth wrote it", ["William Shakespeare"])


def test_answers_with_punctuation_and_digits():
    assert probe.is_correct("Water is H2O.", ["H2O"])
    assert probe.is_correct("Water is h₂o.", ["H2O"])
    assert not probe.is_correct("Heavy water is H2O2.", ["H2O"])
    assert probe.is_correct("It was J. K. Rowling.", ["J. K. Rowling"])
    assert probe.is_correct("(I think it was U.S.)", ["U.S."])


# Scoring.

def test_score_counts_overall_and_by_category():
    questions = [
        {"id": "a", "category": "maths", "question": "What is 2 plus 2?", "answers": ["4", "four"]},
        {"id": "b", "category": "maths", "question": "What is 3 times 4?", "answers": ["12", "twelve"]},
        {"id": "c", "category": "capitals", "question": "Capital of Japan?", "answers": ["Tokyo"]},
    ]
    report = probe.score(questions, ["It is four.", "It is 14.", "Tokyo"])
    assert report["questions"] == 3 and report["correct"] == 2
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["by_category"] == {
        "maths": {"questions": 2, "correct": 1, "accuracy": 0.5},
        "capitals": {"questions": 1, "correct": 1, "accuracy": 1.0},
    }
    assert [row["correct"] for row in report["rows"]] == [True, False, True]
    assert report["rows"][1] == {"id": "b", "category": "maths", "question": "What is 3 times 4?",
                                 "completion": "It is 14.", "correct": False}


def test_score_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        probe.score([GOOD, dict(GOOD, id="q2")], ["4"])


# Validation.

def test_a_valid_file_loads(tmp_path):
    path = write_lines(tmp_path, [GOOD, dict(GOOD, id="q2"), ""])
    assert [q["id"] for q in probe.load_questions(path)] == ["q1", "q2"]


THIRD = dict(GOOD, id="q3")


@pytest.mark.parametrize("bad, field", [
    ({k: v for k, v in THIRD.items() if k != "answers"}, "'answers'"),
    (dict(THIRD, answers=[]), "'answers'"),
    (dict(THIRD, answers=["4", " "]), "'answers'"),
    (dict(THIRD, answers="4"), "'answers'"),
    ({k: v for k, v in THIRD.items() if k != "question"}, "'question'"),
    (dict(THIRD, id=""), "'id'"),
    (dict(THIRD, id="q1"), "'id'"),
    ("{not json", "JSON"),
    ("[1, 2]", "object"),
])
def test_a_bad_line_names_its_line_and_field(tmp_path, bad, field):
    path = write_lines(tmp_path, [GOOD, dict(GOOD, id="q2"), bad])
    with pytest.raises(ValueError, match=r"line 3\b") as caught:
        probe.load_questions(path)
    assert field in str(caught.value)


def test_a_duplicate_id_names_both_lines(tmp_path):
    path = write_lines(tmp_path, [GOOD, dict(GOOD, id="q2"), dict(GOOD, id="q2")])
    with pytest.raises(ValueError, match=r"line 3: field 'id' repeats 'q2' from line 2"):
        probe.load_questions(path)
