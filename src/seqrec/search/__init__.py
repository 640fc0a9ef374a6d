"""Hyper-parameter search on Optuna: any config key, pruning on validation curves, many processes and machines
through one study (docs/search.md). Optuna is the `search` extra; it is imported when a search starts.

The package is callable: `seqrec.search(config, space, trials=20)` is `seqrec.search.search(...)`.
"""

import sys
import types
from typing import Any

from seqrec.search.results import PruningSavings, best_config, pruning_savings
from seqrec.search.run import SearchOutcome, SearchSettings, run_search, search
from seqrec.search.space import CategoricalParam, FloatParam, IntParam, SearchSpace, parse_space

__all__ = [
    "search", "run_search", "SearchSettings", "SearchOutcome", "SearchSpace", "parse_space", "FloatParam",
    "IntParam", "CategoricalParam", "PruningSavings", "pruning_savings", "best_config",
]


class _CallableModule(types.ModuleType):
    """This package, callable as its `search` function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
