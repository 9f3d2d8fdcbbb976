"""A catalogue: the documents a retriever searches, each an id and the text it indexes.

File layout (JSONL), one document per line: {"id": "…", "text": "…"} plus any display fields
("title", "year", "genres", "description"). A line without "text" is indexed on its title, year, genres
and description joined by spaces. `recr1 data` writes catalogue.jsonl beside the prompts."""

import dataclasses

from recr1.data import movielens
from recr1.data.jsonl import read_jsonl, write_jsonl

BUILTIN = tuple(movielens.DATASETS)   # "ml-100k", "ml-1m": read from the installed packages


@dataclasses.dataclass
class Catalogue:
    name: str
    ids: list
    texts: list
    titles: dict = dataclasses.field(default_factory=dict)   # id -> display title

    def __post_init__(self):
        if len(self.ids) != len(self.texts):
            raise ValueError(f"catalogue {self.name}: {len(self.ids)} ids for {len(self.texts)} texts")
        if not self.ids:
            raise ValueError(f"catalogue {self.name}: no documents")
        self.index_of = {}
        for position, doc_id in enumerate(self.ids):
            if doc_id in self.index_of:
                raise ValueError(f"catalogue {self.name}: id '{doc_id}' appears twice")
            self.index_of[doc_id] = position

    def __len__(self):
        return len(self.ids)

    def __contains__(self, doc_id):
        return doc_id in self.index_of

    def records(self):
        for doc_id, text in zip(self.ids, self.texts):
            yield {"id": doc_id, "title": self.titles.get(doc_id, ""), "text": text}


def from_movielens(data):
    """The catalogue of a loaded MovieLens data set: every item, indexed on title, year and genres."""
    return from_items(data.name, data.items)


def from_items(name, items):
    items = list(items.values())
    return Catalogue(name, [i.id for i in items], [i.text for i in items], {i.id: i.label for i in items})


def movielens_records(data):
    """Catalogue lines with the display fields of a MovieLens data set."""
    for item in data.items.values():
        yield {"id": item.id, "title": item.title, "year": item.year, "genres": list(item.genres),
               "text": item.text}


def _document_text(record, where):
    if "text" in record:
        if not isinstance(record["text"], str):
            raise ValueError(f"{where}: text: a string, got {type(record['text']).__name__}")
        return record["text"]
    parts = []
    for field in ("title", "year", "genres", "description"):
        value = record.get(field)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if value not in (None, ""):
            parts.append(str(value))
    if not parts:
        raise ValueError(f"{where}: neither text nor title/description")
    return " ".join(parts)


def from_jsonl(path, name=None):
    """A catalogue from a JSONL file (see the module's docstring for the layout)."""
    ids, texts, titles = [], [], {}
    for number, record in enumerate(read_jsonl(path), start=1):
        where = f"{path}: document {number}"
        if "id" not in record:
            raise ValueError(f"{where}: id: missing")
        doc_id = record["id"]
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
            raise ValueError(f"{where}: id: a string, got {type(doc_id).__name__}")
        ids.append(str(doc_id))
        texts.append(_document_text(record, where))
        if record.get("title"):
            titles[str(doc_id)] = str(record["title"])
    return Catalogue(name or path, ids, texts, titles)


def write(path, records):
    return write_jsonl(path, records)


def load(spec, movielens_path=None):
    """A catalogue by name ("ml-100k", "ml-1m": from the installed packages, or movielens_path) or from
    a catalogue JSONL file."""
    if spec in BUILTIN:   # the .item file only; duplicates merged as movielens.load merges them
        items, _ = movielens.load_items(spec, movielens_path)
        return from_items(spec, movielens.merge_duplicates(items)[0])
    return from_jsonl(spec)
