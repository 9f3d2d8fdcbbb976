"""The catalogues a retrieval plugin serves, each with its BM25 index built once, and the relevant items
an item's metadata names."""

import os

from recr1.data import catalogue as catalogue_module
from recr1.errors import FailedPrecondition
from recr1.rewards import bm25, plugin


def _doc_id(value, index, name):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise plugin.bad(index, name, f"an item id (string), got {value!r}")
    return str(value)


def targets(metadata, index, catalogue):
    """{id: gain} from "targets" ({id: gain} or [id, ...]) or "target" (one id), every id in catalogue."""
    if metadata.get("targets") is not None:
        raw, name = metadata["targets"], "targets"
        if isinstance(raw, dict):
            out = {}
            for key, gain in raw.items():
                if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain >= 0:
                    raise plugin.bad(index, f"targets.{key}", f"a gain >= 0, got {gain!r}")
                out[str(key)] = float(gain)
        elif isinstance(raw, list):
            out = {_doc_id(v, index, name): 1.0 for v in raw}
        else:
            raise plugin.bad(index, name, f"an object {{id: gain}} or a list of ids, got {type(raw).__name__}")
    elif metadata.get("target") is not None:
        name = "target"
        out = {_doc_id(metadata["target"], index, name): 1.0}
    else:
        raise plugin.bad(index, "target", "missing (give \"target\": id or \"targets\": [ids] or {id: gain})")
    if not out:
        raise plugin.bad(index, name, "empty")
    for doc_id in out:
        if doc_id not in catalogue:
            raise plugin.bad(index, name, f"'{doc_id}' is not in catalogue '{catalogue.name}'")
    return out


class Catalogues:
    """The catalogues a plugin serves, by name, each with its BM25 index built once.

    files: {name: catalogue JSONL path}. The names "ml-100k" and "ml-1m" are always known (read from the
    installed packages, or movielens_path). default: the name used when an item's metadata has no
    "catalogue" (the only file given, when there is one)."""

    def __init__(self, files=None, default=None, movielens_path=None):
        self.files = dict(files or {})
        self.movielens_path = movielens_path
        if default is None and len(self.files) == 1:
            default = next(iter(self.files))
        self.default = default
        if default is not None and default not in self.files and default not in catalogue_module.BUILTIN:
            raise ValueError(f"catalogue: unknown default '{default}'")

    def names(self):
        return sorted(set(self.files) | set(catalogue_module.BUILTIN))

    def index(self, name):
        """The BM25Index of catalogue name, built on first use. KeyError for an unknown name;
        FailedPrecondition when its files cannot be read."""
        if name in self.files:
            path = self.files[name]
            key, make = ("file", os.path.abspath(path)), lambda: catalogue_module.from_jsonl(path, name)
        elif name in catalogue_module.BUILTIN:
            path = self.movielens_path
            key, make = ("movielens", name, path), lambda: catalogue_module.load(name, path)
        else:
            raise KeyError(name)
        try:
            return bm25.cached_index(key, make)
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(f"catalogue {name}: {exc}") from None

    def prepare(self):
        """Builds the indexes of the files given and of the default catalogue now, not at the first request."""
        for name in sorted(set(self.files) | ({self.default} if self.default else set())):
            self.index(name)

    def for_item(self, metadata, index):
        name = metadata.get("catalogue", self.default)
        known = ", ".join(self.names())
        if name is None:
            raise plugin.bad(index, "catalogue", f"missing, and this plugin has no default (known: {known})")
        if not isinstance(name, str):
            raise plugin.bad(index, "catalogue", f"a name, got {name!r}")
        try:
            return self.index(name)
        except KeyError:
            raise plugin.bad(index, "catalogue", f"unknown '{name}' (known: {known})") from None


def from_args(args):
    """Catalogues from the --catalogue, --default-catalogue and --movielens-path options."""
    names = [name for name, _ in args.catalogue]
    if len(set(names)) != len(names):
        raise SystemExit("--catalogue: the same name twice")
    for _, path in args.catalogue:
        if not os.path.isfile(path):
            raise SystemExit(f"--catalogue: no such file {path}")
    try:
        return Catalogues(dict(args.catalogue), args.default_catalogue, args.movielens_path)
    except ValueError as exc:
        raise SystemExit(str(exc))
