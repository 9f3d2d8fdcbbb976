"""`recr1 data …`: MovieLens and ESCI-format files -> prompt JSONL files and a catalogue.

    recr1 data locate                                    where the MovieLens files are
    recr1 data movielens --task seqrec --out DIR         DIR/{train,validation,test}.jsonl + DIR/catalogue.jsonl
    recr1 data esci FILE --out DIR                       the same for product search"""

import json
import os
import sys

from recr1.data import catalogue, esci, movielens, records
from recr1.data.jsonl import write_jsonl
from recr1.data.split import SPLITS

PLUGIN_OF_TASK = {"seqrec": "rec_r1", "search": "rec_r1", "preference": "rlrf4rec", "rating": "reczero"}


def _fractions(text):
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--fractions: three numbers like 0.8,0.1,0.1, got '{text}'") from None
    if len(values) != 3:
        raise ValueError(f"--fractions: three numbers like 0.8,0.1,0.1, got '{text}'")
    return values


def _gains(pairs):
    out = {}
    for text in pairs or []:
        label, _, value = text.partition("=")
        label = esci.LABELS.get(label.strip().lower())
        try:
            out[label] = float(value)
        except ValueError:
            label = None
        if label is None:
            raise ValueError(f"--gain: LABEL=NUMBER with LABEL one of E, S, C, I, got '{text}'")
    return out


def add_commands(commands):
    data = commands.add_parser("data", help="prompt JSONL files from MovieLens or ESCI-format files")
    sub = data.add_subparsers(dest="data_command", required=True)
    locate = sub.add_parser("locate", help="the folders of the MovieLens files, as JSON")
    locate.add_argument("--dataset", choices=sorted(movielens.DATASETS), action="append")
    locate.add_argument("--path", help="a folder to look in instead of the installed packages")

    ml = sub.add_parser("movielens", help="MovieLens prompts for one task, split by user")
    ml.add_argument("--dataset", choices=sorted(movielens.DATASETS), default="ml-100k")
    ml.add_argument("--task", choices=records.TASKS, required=True,
                    help="seqrec: Rec-R1 next-item query; rating: RecZero; preference: RLRF4Rec")
    ml.add_argument("--path", help="folder of the atomic files (default: the installed package)")
    ml.add_argument("--history", type=int, default=10, help="items shown per prompt (default 10)")
    ml.add_argument("--targets-per-user", type=int, default=1,
                    help="the last N items of each user become targets (default 1: the last item)")
    ml.add_argument("--min-history", type=int, default=1, help="fewer earlier items than this: no prompt")
    _split_options(ml)

    search = sub.add_parser("esci", help="Rec-R1 product-search prompts from an ESCI-format file, split by query")
    search.add_argument("file", help=".csv, .tsv or .jsonl with query, product_id, product_title, "
                                     "product_description, esci_label")
    search.add_argument("--name", help="the catalogue's name in the metadata (default: the file's name)")
    search.add_argument("--gain", action="append", metavar="LABEL=GAIN",
                        help="NDCG gain of a label (default E=1 S=0.1 C=0.01 I=0)")
    _split_options(search)
    return data


def _split_options(parser):
    parser.add_argument("--out", required=True, help="folder for the JSONL files")
    parser.add_argument("--seed", type=int, default=0, help="fixes the split (default 0)")
    parser.add_argument("--fractions", default="0.8,0.1,0.1", help="train,validation,test (default 0.8,0.1,0.1)")


def _write(out, splits, catalogue_records):
    counts = {split: write_jsonl(os.path.join(out, f"{split}.jsonl"), splits[split]) for split in SPLITS}
    counts["catalogue"] = write_jsonl(os.path.join(out, "catalogue.jsonl"), catalogue_records)
    return counts


def run(args):
    try:
        if args.data_command == "locate":
            names = args.dataset or sorted(movielens.DATASETS)
            found = {}
            for name in names:
                try:
                    found[name] = movielens.locate(name, args.path)
                except movielens.DataNotFound as exc:
                    found[name] = None
                    print(f"recr1 data: {exc}", file=sys.stderr)
            print(json.dumps(found, indent=2))
            return 0 if all(found.values()) else 1
        fractions = _fractions(args.fractions)
        if args.data_command == "movielens":
            data = movielens.load(args.dataset, args.path)
            splits = records.build(data, args.task, args.seed, fractions, args.history, args.targets_per_user,
                                   args.min_history)
            counts = _write(args.out, splits, catalogue.movielens_records(data))
            name, task = data.name, args.task
        else:
            judgements = esci.load(args.file)
            name = args.name or os.path.splitext(os.path.basename(args.file))[0]
            splits = esci.build(judgements, name, args.seed, fractions, _gains(args.gain))
            counts = _write(args.out, splits, esci.catalogue_records(judgements))
            task = "search"
    except (movielens.DataNotFound, FileNotFoundError, ValueError) as exc:
        print(f"recr1 data: {exc}", file=sys.stderr)
        return 1
    plugin = PLUGIN_OF_TASK[task]
    catalogue_option = "" if task == "rating" else f" --catalogue {name}={os.path.join(args.out, 'catalogue.jsonl')}"
    print(json.dumps({"out": args.out, "task": task, "catalogue": name, "records": counts,
                      "reward_plugin": f"recr1 reward {plugin} ADDRESS{catalogue_option}"}, indent=2))
    return 0
