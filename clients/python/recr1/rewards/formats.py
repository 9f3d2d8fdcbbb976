"""The answer formats the methods ask for, checked and parsed.

Rec-R1: the whole completion is <think>…</think> then <answer>…</answer> (whitespace around and between
only), each of the four tags exactly once, and the answer is a JSON object whose "query" is a non-empty
string.

RecZero: the eight tags <analyze user> </analyze user> <analyze item> </analyze item> <match> </match>
<rate> </rate> each appear exactly once, in that order, and the rating inside <rate> is a number in
[1, 5]. The rating is parsed whenever there is exactly one <rate>…</rate> holding a number in [1, 5], even
when the rest of the format does not hold."""

import dataclasses
import json
import re

REC_R1_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_REC_R1 = re.compile(r"\A\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*\Z", re.DOTALL)

RECZERO_TAGS = ("<analyze user>", "</analyze user>", "<analyze item>", "</analyze item>", "<match>", "</match>",
                "<rate>", "</rate>")
_RATE = re.compile(r"<rate>(?P<value>.*?)</rate>", re.DOTALL)
_NUMBER = re.compile(r"\A[+]?(\d+(\.\d*)?|\.\d+)\Z")
RATING_RANGE = (1.0, 5.0)


@dataclasses.dataclass
class Parsed:
    ok: bool            # the format holds
    value: object       # the query (Rec-R1) or the rating (RecZero); None when not parsed
    reason: str         # why the format does not hold ("" when it does)


def parse_rec_r1(completion):
    """Parsed(ok, query, reason) for a Rec-R1 completion."""
    for tag in REC_R1_TAGS:
        count = completion.count(tag)
        if count != 1:
            return Parsed(False, None, f"{tag} appears {count} times, not once")
    match = _REC_R1.match(completion)
    if not match:
        return Parsed(False, None, "not <think>…</think> then <answer>…</answer> with nothing else around them")
    try:
        answer = json.loads(match.group("answer"))
    except ValueError:
        return Parsed(False, None, "the answer is not JSON")
    if not isinstance(answer, dict):
        return Parsed(False, None, "the answer is not a JSON object")
    query = answer.get("query")
    if not isinstance(query, str) or not query.strip():
        return Parsed(False, None, "the answer has no non-empty \"query\" string")
    return Parsed(True, query.strip(), "")


def parse_rating(completion):
    """The rating inside the one <rate>…</rate>, when it is a number in [1, 5]; else None."""
    matches = _RATE.findall(completion)
    if len(matches) != 1:
        return None
    text = matches[0].strip()
    if not _NUMBER.match(text):
        return None
    value = float(text)
    low, high = RATING_RANGE
    return value if low <= value <= high else None


def parse_reczero(completion):
    """Parsed(ok, rating, reason) for a RecZero completion."""
    rating = parse_rating(completion)
    position = -1
    for tag in RECZERO_TAGS:
        count = completion.count(tag)
        if count != 1:
            return Parsed(False, rating, f"{tag} appears {count} times, not once")
        found = completion.find(tag)
        if found < position:
            return Parsed(False, rating, f"{tag} is out of order")
        position = found
    if rating is None:
        return Parsed(False, None, "the rating inside <rate> is not a number in [1, 5]")
    return Parsed(True, rating, "")
