"""Sweep combinators: lists of dotted-key settings built from small YAML-friendly pieces.

A sweep node is one of::

    {fixed: {key: value, ...}}          one setting
    {sweep: {key: [v1, v2, ...]}}       one setting per value
    {product: [node, node, ...]}        every combination, the first node outermost
    {zip: [node, node, ...]}            element-wise, all nodes of the same length
    {chain: [node, node, ...]}          one after the other

Keys are dotted configuration keys (``objective.beta``, ``data.name``, ``seed``). The
position of a setting in the expanded list is its ``model_num``: for the study's sweep,
``product([datasets, chain(methods), seeds])`` gives disentanglement_lib's numbering
``model_num = 1800 * dataset + 300 * method + 50 * hyperparameter + seed``.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

from ..errors import ParameterError, close_matches

COMBINATORS = ("fixed", "sweep", "product", "zip", "chain")


class SpecError(ParameterError):
    """A study spec is malformed; the message gives the path inside the spec."""


def expand(node: Any, path: str = "sweep") -> list[dict]:
    """The list of settings (flat dicts of dotted keys) a sweep node stands for."""
    if not isinstance(node, Mapping) or len(node) != 1:
        raise SpecError(f"{path}: a sweep node is a mapping with exactly one of {list(COMBINATORS)}, got {node!r}")
    (kind, body), = node.items()
    where = f"{path}.{kind}"
    if kind == "fixed":
        _mapping(body, where)
        return [dict(body)]
    if kind == "sweep":
        _mapping(body, where)
        if len(body) != 1:
            raise SpecError(f"{where}: sweep one key at a time (use product or zip for several), got {list(body)}")
        (key, values), = body.items()
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where}.{key}: expected a non-empty list of values, got {values!r}")
        return [{key: v} for v in values]
    if kind not in COMBINATORS:
        raise SpecError(f"{path}: unknown combinator {kind!r}; use one of {list(COMBINATORS)}." + close_matches(str(kind), list(COMBINATORS)))
    if not isinstance(body, list) or not body:
        raise SpecError(f"{where}: expected a non-empty list of sweep nodes, got {body!r}")
    parts = [expand(child, f"{where}[{i}]") for i, child in enumerate(body)]
    if kind == "chain":
        return [setting for part in parts for setting in part]
    if kind == "zip":
        lengths = {len(p) for p in parts}
        if len(lengths) != 1:
            raise SpecError(f"{where}: zip needs nodes of equal length, got lengths {[len(p) for p in parts]}")
        return [_merge(combo, where) for combo in zip(*parts)]
    return [_merge(combo, where) for combo in itertools.product(*parts)]


def _merge(settings, where) -> dict:
    out: dict = {}
    for s in settings:
        for key, value in s.items():
            if key in out and out[key] != value:
                raise SpecError(f"{where}: key {key!r} is set twice ({out[key]!r} and {value!r}) in one combination")
            out[key] = value
    return out


def _mapping(body, where):
    if not isinstance(body, Mapping) or not body:
        raise SpecError(f"{where}: expected a non-empty mapping of dotted keys to values, got {body!r}")


def nest(flat: Mapping[str, Any]) -> dict:
    """``{"objective.beta": 4}`` -> ``{"objective": {"beta": 4}}``."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
