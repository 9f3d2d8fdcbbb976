"""A fixed general-ability probe: does fine-tuning keep the chat model's everyday knowledge?

Rec-R1 reports that reinforcement learning on a recommendation reward keeps the model's general ability
while supervised fine-tuning on the same task may lose it. This module holds the yardstick for that
claim at SmolLM2-135M-Instruct's scale: 120 short questions with short, checkable answers (capitals,
colours, opposites, plurals, animals, calendar order, small-number arithmetic, units, famous people,
science basics, letters, geography), in `probe_questions.jsonl` beside this file, one JSON object a line:

    {"id": "p001", "category": "capitals", "question": "What is the capital of France?", "answers": ["Paris"]}

`answers` lists every accepted surface form ("4" and "four"). Ask each question with `messages`,
generate greedily, and pass the completions to `score`:

    questions = probe.load_questions()
    completions = [generate(probe.messages(q)) for q in questions]
    report = probe.score(questions, completions)   # accuracy overall, per category, and row by row

A completion is correct when any accepted answer appears in it as a whole word or number, ignoring
case and runs of whitespace (`is_correct`). Standard library only."""

import json
import os
import re
import unicodedata

QUESTIONS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe_questions.jsonl")

INSTRUCTION = " Answer in a few words."


def load_questions(path=QUESTIONS_PATH):
    """The probe's questions, in file order, as dicts with id, category, question and answers.

    Blank lines are skipped. Raises ValueError naming the file, the line number and the field when a
    line is not a JSON object, lacks a non-empty string id, category or question, has no non-empty list
    of non-empty string answers, or repeats an earlier id."""
    questions = []
    seen = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
            for field in ("id", "category", "question"):
                value = record.get(field)
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"{where}: field '{field}' is missing or not a non-empty string")
            answers = record.get("answers")
            if not isinstance(answers, list) or not answers:
                raise ValueError(f"{where}: field 'answers' is missing or not a non-empty list")
            for index, answer in enumerate(answers):
                if not isinstance(answer, str) or not answer.strip():
                    raise ValueError(f"{where}: field 'answers' item {index} is not a non-empty string")
            if record["id"] in seen:
                raise ValueError(f"{where}: field 'id' repeats {record['id']!r} from line {seen[record['id']]}")
            seen[record["id"]] = number
            questions.append(record)
    return questions


def messages(question):
    """The chat turn that asks one probe question (a dict from `load_questions`)."""
    return [{"role": "user", "content": question["question"] + INSTRUCTION}]


def _normalise(text):
    # NFKC folds look-alikes such as the subscript in "H₂O"; casefold is a thorough lower-casing.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _pattern(answer):
    # Lookarounds rather than \b, so that answers starting or ending in punctuation ("J. K. Rowling",
    # "U.S.") still have a boundary. An answer must not touch a letter, digit or underscore on either
    # side, nor sit next to a decimal point or thousands separator that continues a number, so that
    # "4" is found in "It is 4." but not in "14", "4.5", "0.4" or "4,000".
    body = re.escape(_normalise(answer)).replace(r"\ ", r"\s+")
    return re.compile(r"(?<!\w)(?<!\d[.,])" + body + r"(?!\w)(?![.,]\d)")


def is_correct(completion, answers):
    """Whether any accepted answer occurs in the completion as a whole word or number (case-insensitive)."""
    text = _normalise(completion or "")
    return any(_pattern(answer).search(text) for answer in answers if answer.strip())


def _summary(questions, correct):
    return {"questions": questions, "correct": correct, "accuracy": correct / questions if questions else 0.0}


def score(questions, completions):
    """Marks each completion against its question's answers.

    Returns {"questions", "correct", "accuracy", "by_category": {category: {"questions", "correct",
    "accuracy"}}, "rows": [{"id", "category", "question", "completion", "correct"}]}, categories in
    order of first appearance. Raises ValueError when there is not exactly one completion a question."""
    questions = list(questions)
    completions = list(completions)
    if len(questions) != len(completions):
        raise ValueError(f"{len(questions)} questions but {len(completions)} completions")
    rows = []
    tally = {}
    for question, completion in zip(questions, completions):
        correct = is_correct(completion, question["answers"])
        category = question.get("category", "")
        rows.append({"id": question["id"], "category": category, "question": question["question"],
                     "completion": completion, "correct": correct})
        counts = tally.setdefault(category, [0, 0])
        counts[0] += 1
        counts[1] += int(correct)
    right = sum(row["correct"] for row in rows)
    report = _summary(len(rows), right)
    report["by_category"] = {category: _summary(n, k) for category, (n, k) in tally.items()}
    report["rows"] = rows
    return report
