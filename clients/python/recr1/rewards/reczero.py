"""RecZero's reward (rating prediction, think then rate):

    format   = +1 when <analyze user>…</analyze user><analyze item>…</analyze item><match>…</match><rate>N</rate>
               each appear once, in order, with N in [1, 5]; else -1
    accuracy = 1 - |N - truth| / 2 when a rating N in [1, 5] is parsed from the one <rate>…</rate>; else 0
    reward   = format + accuracy          (from -2 to +2)

Metadata of an item: "rating" (the true rating, a number).

As a plugin:  python -m recr1.rewards.reczero ADDRESS     or:  recr1 reward reczero ADDRESS"""

import sys

from recr1.rewards import plugin
from recr1.rewards.formats import parse_reczero


def score(completion, truth):
    """(reward, details) of one completion against the true rating."""
    parsed = parse_reczero(completion)
    fmt = 1.0 if parsed.ok else -1.0
    details = {"format": fmt}
    if parsed.value is None:
        return fmt, details
    error = abs(parsed.value - truth)
    accuracy = 1.0 - error / 2.0
    details.update({"accuracy": accuracy, "prediction": parsed.value, "abs_error": error})
    return fmt + accuracy, details


class RecZeroReward:
    """The reward function of a plugin: a list of RewardItem in, (reward, details) per item out."""

    def __call__(self, items):
        truths = [plugin.number(plugin.metadata_of(item, i), i, "rating") for i, item in enumerate(items)]
        return [score(item.completion, truth) for item, truth in zip(items, truths)]


def main(argv=None):
    args = plugin.parser("reczero", "RecZero reward plugin: format (+1/-1) + 1 - |rating - truth| / 2.",
                         catalogues=False).parse_args(argv)
    return plugin.serve("reczero", RecZeroReward(), args)


if __name__ == "__main__":
    sys.exit(main())
