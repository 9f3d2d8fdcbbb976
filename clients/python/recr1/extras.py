"""The optional dependencies (`pip install 'recr1[recipes]'`): the client, serve_reward, RewardClient and
the RecZero reward need only pynng and protobuf; the BM25 rewards and the recipes need more."""

import importlib.util

RECIPES = ("numpy", "bm25s", "matplotlib")
INSTALL = "pip install 'recr1[recipes]' (from a source tree: pip install -e 'clients/python[recipes]')"


def missing(modules=RECIPES):
    """The modules of the list that are not installed."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require(what, modules=RECIPES):
    """Raises ImportError naming what needs them and how to install them, when any is missing."""
    absent = missing(modules)
    if absent:
        raise ImportError(f"{what}: needs {', '.join(absent)}: {INSTALL}")
