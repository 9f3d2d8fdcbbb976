#!/usr/bin/env python3
"""Does the base model write RecZero's format unaided? Samples n answers to the first N training prompts of a
rating data folder, as written, with a worked example appended, and with the answer begun by its opening tag
(the assistant turn prefilled with "<analyze user>", as R1-Zero's template ends in "<think>"), and counts the
answers whose format holds,
those with a parsable rating, and the groups whose rewards differ (the only ones GRPO learns from).

    python3 scripts/format_probe.py --data runs/data-rating --prompts 8"""

import argparse
import collections
import json
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "clients" / "python"))

from recr1.recipes.daemon import LocalDaemon  # noqa: E402
from recr1.rewards.formats import parse_reczero  # noqa: E402

EXAMPLE = ("\n\nFor example, for another user and movie:\n"
           "<analyze user> Likes dramas and comedies; mean 3.90. </analyze user>\n"
           "<analyze item> A 1995 thriller; mean 3.20. </analyze item>\n"
           "<match> Thrillers rated lower than average. </match>\n"
           "<rate>3</rate>")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder from `recr1 data movielens --task rating`")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--recr1d", help="the recr1d binary (default: the release build of this tree)")
    args = parser.parse_args()
    with open(pathlib.Path(args.data) / "train.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for _, line in zip(range(args.prompts), f)]
    opening = "<analyze user>"
    variants = {"as written": ("", ""), "with a worked example": (EXAMPLE, ""), "answer begun with its tag": ("", opening)}
    with tempfile.TemporaryDirectory() as folder, \
            LocalDaemon(folder, {"seed": 1}, binary=args.recr1d) as daemon, daemon.client() as client:
        begun = client.tokenize(opening)[0]
        for name, (suffix, prefill) in variants.items():
            chats = [[{"role": "user", "content": r["messages"][0]["content"] + suffix}] for r in records]
            prompts = chats
            if prefill:   # the chat template's tokens, then the answer's first tag
                prompts = [list(t.ids) + begun for t in client.apply_chat_template(chats).tokens]
            started = time.monotonic()
            reply = client.generate(prompts, n=args.samples, temperature=args.temperature, max_new_tokens=96,
                                    stop_strings=["</rate>"])
            groups = [[parse_reczero(prefill + c.text) for c in result.completions] for result in reply.results]
            answers = [p for group in groups for p in group]
            signal = sum(len({(p.ok, p.value) for p in group}) > 1 for group in groups)
            reasons = collections.Counter(p.reason for p in answers if not p.ok).most_common(2)
            print(f"{name}: format {sum(p.ok for p in answers)}/{len(answers)}, rated "
                  f"{sum(p.value is not None for p in answers)}/{len(answers)}, groups with signal "
                  f"{signal}/{len(groups)} ({time.monotonic() - started:.0f} s); failures: {reasons}")

if __name__ == "__main__":
    main()
