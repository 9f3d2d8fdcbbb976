"""A small product-search file in the ESCI layout, written by the tests themselves."""

import csv

ESCI_ROWS = [
    # query_id, query, product_id, title, description, label
    ("q1", "running shoes men", "P1", "Men's Running Shoes, Lightweight", "breathable mesh trainers", "E"),
    ("q1", "running shoes men", "P2", "Women's Running Shoes", "cushioned trainers for women", "S"),
    ("q1", "running shoes men", "P3", "Shoe Laces", "replacement laces, 120 cm", "C"),
    ("q1", "running shoes men", "P4", "Coffee Grinder", "burr grinder", "I"),
    ("q2", "coffee grinder", "P4", "Coffee Grinder", "burr grinder", "exact"),
    ("q3", "umbrella", "P3", "Shoe Laces", "replacement laces, 120 cm", "irrelevant"),
]


def write_esci_csv(path, rows=ESCI_ROWS, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(["query_id", "query", "product_id", "product_title", "product_description", "esci_label"])
        writer.writerows(rows)
