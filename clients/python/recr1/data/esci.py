"""Product search data in the ESCI layout (Amazon's Shopping Queries data set), from files the user has.

One row per (query, product) judgement, as CSV, TSV or JSONL (chosen by the file's extension), with
these columns (other columns are ignored; names are case-insensitive):

    query                                  the shopper's query
    query_id                               optional; the query text identifies the query when absent
    product_id
    product_title or title
    product_description or description     optional
    esci_label, label or relevance         E/S/C/I or exact/substitute/complement/irrelevant

A product's gain follows the label: by default E 1, S 0.1, C 0.01, I 0 (the KDD Cup 2022 task-1 gains)."""

import csv
import dataclasses
import os

from recr1.data import prompts
from recr1.data.catalogue import Catalogue
from recr1.data.jsonl import read_jsonl
from recr1.data.split import SPLITS, split_of

LABELS = {"e": "E", "exact": "E", "s": "S", "substitute": "S", "c": "C", "complement": "C",
          "i": "I", "irrelevant": "I"}
DEFAULT_GAINS = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
COLUMNS = {
    "query": ("query",),
    "query_id": ("query_id",),
    "product_id": ("product_id",),
    "title": ("product_title", "title"),
    "description": ("product_description", "description"),
    "label": ("esci_label", "label", "relevance"),
}
REQUIRED = ("query", "product_id", "title", "label")


@dataclasses.dataclass(frozen=True)
class Judgement:
    query_id: str
    query: str
    product_id: str
    title: str
    description: str
    label: str          # "E", "S", "C" or "I"


def _rows(path):
    extension = os.path.splitext(path)[1].lower()
    if extension == ".jsonl":
        for number, record in enumerate(read_jsonl(path), start=1):
            yield f"{path}: record {number}", record
    elif extension in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if extension == ".tsv" else ",")
            for number, record in enumerate(reader, start=2):
                yield f"{path}:{number}", record
    else:
        raise ValueError(f"{path}: unknown format '{extension}' (ESCI files are .csv, .tsv or .jsonl)")


def _field(record, name, where):
    lowered = {str(key).strip().lower(): value for key, value in record.items() if key is not None}
    for column in COLUMNS[name]:
        if column in lowered and lowered[column] is not None:
            value = lowered[column]
            if isinstance(value, (dict, list, bool)):
                raise ValueError(f"{where}: {column}: a string, got {type(value).__name__}")
            return str(value).strip()
    if name in REQUIRED:
        raise ValueError(f"{where}: {' or '.join(COLUMNS[name])}: missing")
    return ""


def load(path):
    """The judgements of an ESCI-format file, in file order."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such ESCI file")
    out = []
    for where, record in _rows(path):
        query = _field(record, "query", where)
        product_id = _field(record, "product_id", where)
        raw_label = _field(record, "label", where)
        label = LABELS.get(raw_label.lower())
        if label is None:
            raise ValueError(f"{where}: {'/'.join(COLUMNS['label'])}: '{raw_label}' is not one of E, S, C, I "
                             "(or exact, substitute, complement, irrelevant)")
        if not query:
            raise ValueError(f"{where}: query: empty")
        if not product_id:
            raise ValueError(f"{where}: product_id: empty")
        query_id = _field(record, "query_id", where) or query
        out.append(Judgement(query_id, query, product_id, _field(record, "title", where),
                             _field(record, "description", where), label))
    if not out:
        raise ValueError(f"{path}: no judgements")
    return out


def catalogue(judgements, name):
    """Every product judged, once (the first title and description seen), indexed on title + description."""
    ids, texts, titles = [], [], {}
    for j in judgements:
        if j.product_id not in titles:
            ids.append(j.product_id)
            texts.append(f"{j.title} {j.description}".strip())
            titles[j.product_id] = j.title
    return Catalogue(name, ids, texts, titles)


def catalogue_records(judgements):
    seen = set()
    for j in judgements:
        if j.product_id not in seen:
            seen.add(j.product_id)
            yield {"id": j.product_id, "title": j.title, "description": j.description,
                   "text": f"{j.title} {j.description}".strip()}


def build(judgements, name, seed=0, fractions=(0.8, 0.1, 0.1), gains=None):
    """Rec-R1 product-search records split by query: {"train": [...], "validation": [...], "test": [...]}.
    A query whose products all have gain 0 is left out (no NDCG to earn)."""
    gains = dict(DEFAULT_GAINS, **(gains or {}))
    queries = {}
    for j in judgements:
        text, labels = queries.setdefault(j.query_id, (j.query, {}))
        labels[j.product_id] = j.label
    out = {split: [] for split in SPLITS}
    for query_id, (text, labels) in queries.items():
        targets = {pid: gains[label] for pid, label in labels.items() if gains[label] > 0}
        if not targets:
            continue
        split = split_of(query_id, seed, fractions)
        out[split].append({
            "id": f"{name}/search/{query_id}",
            "messages": prompts.search_messages(text),
            "metadata": {"task": "search", "catalogue": name, "split": split, "query_id": query_id,
                         "query": text, "targets": targets, "labels": labels},
        })
    return out
