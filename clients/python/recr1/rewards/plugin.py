"""What the reward plugins share: metadata checks that name the field, the catalogues a plugin serves,
and the command line that turns a reward into a plugin process (recr1.serve_reward).

Bad metadata is the request's fault: the whole request is answered with INVALID_ARGUMENT naming the
field ("items[2].metadata.target"), not with a reward."""

import argparse
import logging
import math
import os
import sys

from recr1.errors import InvalidArgument
from recr1.reward import serve_reward


def bad(index, name, message):
    field = f"items[{index}].metadata.{name}"
    return InvalidArgument(f"{field}: {message}", field=field)


def metadata_of(item, index):
    """The item's metadata, which must be a JSON object."""
    if not isinstance(item.metadata, dict):
        field = f"items[{index}].metadata_json"
        raise InvalidArgument(f"{field}: a JSON object, got {type(item.metadata).__name__}", field=field)
    return item.metadata


def number(metadata, index, name, required=True, default=None):
    if name not in metadata or metadata[name] is None:
        if required:
            raise bad(index, name, "missing")
        return default
    value = metadata[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(index, name, f"a finite number, got {value!r}")
    return float(value)


def positive_int(metadata, index, name, default):
    if name not in metadata or metadata[name] is None:
        return default
    value = metadata[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad(index, name, f"a positive integer, got {value!r}")
    return value


def _catalogue_arg(text):
    if "=" in text:
        name, path = text.split("=", 1)
    else:
        path = text
        name = os.path.splitext(os.path.basename(text))[0]
    if not name or not path:
        raise argparse.ArgumentTypeError(f"--catalogue: NAME=PATH or PATH, got '{text}'")
    return name, path


def parser(name, description, catalogues=True, k=None):
    p = argparse.ArgumentParser(prog=f"recr1 reward {name}", description=description)
    p.add_argument("address", help="where to listen: ipc:///path.sock or tcp://127.0.0.1:PORT")
    p.add_argument("--workers", type=int, default=1, help="requests served at once (threads)")
    p.add_argument("--token-file", help="file with the token that requests must carry")
    if catalogues:
        p.add_argument("--catalogue", action="append", type=_catalogue_arg, default=[], metavar="NAME=PATH",
                       help="a catalogue JSONL file (from `recr1 data`), named for the metadata's \"catalogue\"; "
                            "repeatable. ml-100k and ml-1m are always known")
        p.add_argument("--default-catalogue", help="the catalogue of items whose metadata names none")
        p.add_argument("--movielens-path", help="folder of the MovieLens atomic files (default: the packages)")
    if k is not None:
        p.add_argument("--k", type=int, default=k, help=f"NDCG cut-off when the metadata has no \"k\" (default {k})")
    return p


def serve(name, reward, args, prepare=None):
    """Runs prepare() (building indexes, say), then serves reward on args.address until SIGTERM / SIGINT.
    Prints one line to stderr once it listens."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if getattr(args, "k", 1) < 1:
        raise SystemExit("--k: at least 1")
    if prepare is not None:
        prepare()
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    if args.workers < 1:
        raise SystemExit("--workers: at least 1")
    serve_reward(reward, args.address, workers=args.workers, token=token, name=f"recr1 reward {name}")
    return 0
