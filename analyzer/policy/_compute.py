"""The Arrow compute functions the policy calls, without importing `pyarrow.compute`.

`import pyarrow.compute` builds a Python wrapper, a signature and a parsed docstring for each of
Arrow's ~290 compute functions (numpydoc's regular expressions over every docstring): callgrind
counts ~190M instructions, about 60 ms of a streamed audit's start here, and the audit calls 25 of
them. Each function below is what `pyarrow.compute`'s wrapper does for the arguments the policy
passes: the same registered C++ function through `pyarrow._compute.call_function`, with the same
options object. `Array.take/.cast/.filter/...` import `pyarrow.compute` on their first call, so
the policy calls the functions here instead (tests/policy/test_policy_stream.py checks that a
streamed audit imports neither `pyarrow.compute` nor pandas).

Arguments are Arrow arrays and typed Arrow scalars: an untyped Python scalar would be converted by
`pa.scalar`, which imports pandas (see `analyzer.policy._cols`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from pyarrow._compute import (
    CastOptions,
    CountOptions,
    DictionaryEncodeOptions,
    FilterOptions,
    JoinOptions,
    MatchSubstringOptions,
    RankOptions,
    ReplaceSubstringOptions,
    SetLookupOptions,
    SliceOptions,
    SortOptions,
    SplitPatternOptions,
    TakeOptions,
    TrimOptions,
    call_function,
)

__all__ = [
    "binary_join_element_wise", "cast", "coalesce", "count_distinct", "dictionary_encode", "drop_null",
    "ends_with", "equal", "fill_null", "filter", "if_else", "index_in", "invert", "is_in", "is_null",
    "is_valid", "list_element", "match_substring", "rank", "replace_substring_regex", "sort_indices",
    "split_pattern", "starts_with", "sum", "take", "unique", "utf8_lower", "utf8_rtrim", "utf8_slice_codeunits",
    "value_counts",
]

_TAKE = TakeOptions(boundscheck=True)
_DROP = FilterOptions("drop")


def take(data: Any, indices: Any) -> Any:
    return call_function("take", [data, indices], _TAKE)


def filter(data: Any, mask: Any) -> Any:
    return call_function("filter", [data, mask], _DROP)


def cast(arr: Any, target_type: pa.DataType) -> Any:
    return call_function("cast", [arr], CastOptions.safe(target_type))


def unique(arr: Any) -> Any:
    return call_function("unique", [arr])


def drop_null(arr: Any) -> Any:
    return call_function("drop_null", [arr])


def is_null(arr: Any) -> Any:
    return call_function("is_null", [arr])


def is_valid(arr: Any) -> Any:
    return call_function("is_valid", [arr])


def invert(arr: Any) -> Any:
    return call_function("invert", [arr])


def sum(arr: Any) -> Any:
    return call_function("sum", [arr])


def value_counts(arr: Any) -> Any:
    return call_function("value_counts", [arr])


def dictionary_encode(arr: Any) -> Any:
    return call_function("dictionary_encode", [arr], DictionaryEncodeOptions("mask"))


def equal(left: Any, right: Any) -> Any:
    return call_function("equal", [left, right])


def if_else(cond: Any, left: Any, right: Any) -> Any:
    return call_function("if_else", [cond, left, right])


def coalesce(*values: Any) -> Any:
    return call_function("coalesce", list(values))


def fill_null(values: Any, fill_value: pa.Scalar) -> Any:
    """`pyarrow.compute.fill_null` with a typed scalar (its cast of another type's scalar included)."""
    if fill_value.type != values.type:
        fill_value = pa.scalar(fill_value.as_py(), type=values.type)
    return call_function("coalesce", [values, fill_value])


def binary_join_element_wise(*strings_and_separator: Any) -> Any:
    """The strings joined by the last argument; null where any is null (pyarrow's default)."""
    return call_function("binary_join_element_wise", list(strings_and_separator), JoinOptions())


def is_in(values: Any, value_set: Any) -> Any:
    return call_function("is_in", [values], SetLookupOptions(value_set))


def index_in(values: Any, value_set: Any) -> Any:
    return call_function("index_in", [values], SetLookupOptions(value_set))


def count_distinct(arr: Any, mode: str = "only_valid") -> Any:
    return call_function("count_distinct", [arr], CountOptions(mode))


def sort_indices(data: Any, sort_keys: Sequence[tuple[str, str]]) -> Any:
    return call_function("sort_indices", [data], SortOptions(sort_keys))


def rank(arr: Any, sort_keys: str = "ascending", tiebreaker: str = "first") -> Any:
    return call_function("rank", [arr], RankOptions(sort_keys, tiebreaker=tiebreaker))


def starts_with(strings: Any, pattern: str) -> Any:
    return call_function("starts_with", [strings], MatchSubstringOptions(pattern))


def ends_with(strings: Any, pattern: str) -> Any:
    return call_function("ends_with", [strings], MatchSubstringOptions(pattern))


def match_substring(strings: Any, pattern: str) -> Any:
    return call_function("match_substring", [strings], MatchSubstringOptions(pattern))


def replace_substring_regex(strings: Any, pattern: str, replacement: str) -> Any:
    return call_function("replace_substring_regex", [strings], ReplaceSubstringOptions(pattern, replacement))


def split_pattern(strings: Any, pattern: str, max_splits: int | None = None) -> Any:
    return call_function("split_pattern", [strings], SplitPatternOptions(pattern, max_splits=max_splits))


def utf8_lower(strings: Any) -> Any:
    return call_function("utf8_lower", [strings])


def utf8_rtrim(strings: Any, characters: str) -> Any:
    return call_function("utf8_rtrim", [strings], TrimOptions(characters))


def utf8_slice_codeunits(strings: Any, start: int) -> Any:
    return call_function("utf8_slice_codeunits", [strings], SliceOptions(start))


def list_element(lists: Any, index: pa.Scalar) -> Any:
    return call_function("list_element", [lists, index])
