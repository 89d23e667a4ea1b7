"""Registries: the one list of each kind of thing (data sets, objectives, metrics, ...).

Each subpackage writes its registry as a literal dict, in the order it should be listed::

    METRICS = Registry("metric", {"mig": MIG, "dci": DCI, ...}, option="setting")

A :class:`Registry` is a read-only Mapping in that order (iterate it, test ``in``, index it),
whose lookups and builds fail with one :class:`~disentangled.errors.UnknownNameError`::

    METRICS["mgi"]             unknown metric 'mgi'; known metrics: ... Did you mean 'mig'?
    METRICS.build("mig", bins=5)
                               metric 'mig' has no setting 'bins'; its settings are [...]. ...

An entry's options are, by default, the keyword parameters of calling it (a dataclass's
fields, a class's ``__init__``), and building it calls it with them; a registry whose entries
are built some other way (an architecture is two classes, a preset is a file) says how.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Mapping, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

_KEYWORDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def keyword_parameters(entry: Callable) -> list[str]:
    """The names ``entry`` accepts as keywords, in its signature's order."""
    return [p.name for p in inspect.signature(entry).parameters.values() if p.kind in _KEYWORDS]


def call(entry: Callable, *args, **options):
    return entry(*args, **options)


class Registry(Mapping[str, T]):
    """A read-only, ordered ``name -> entry`` mapping of one ``kind`` of thing.

    ``option`` is what an entry's keyword options are called in messages ("setting",
    "hyperparameter"); ``options(entry)`` lists them (default: :func:`keyword_parameters`);
    ``build(entry, *args, **options)`` makes the thing (default: calls the entry).
    """

    def __init__(
        self,
        kind: str,
        entries: Mapping[str, T],
        *,
        option: str = "option",
        options: Callable[[T], list[str]] = keyword_parameters,
        build: Callable[..., Any] = call,
    ):
        self.kind = kind
        self.option = option
        self._entries = dict(entries)
        self._options = options
        self._build = build

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name from a YAML file
            raise UnknownNameError(self.kind, name, self._entries) from None

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"

    def options(self, name: str) -> list[str]:
        """The keyword options ``build(name, ...)`` accepts."""
        return list(self._options(self[name]))

    def check_options(self, name: str, options: Mapping[str, Any]) -> None:
        """Refuse the first option ``name`` does not accept, naming those it does."""
        allowed = self.options(name)
        for key in options:
            if key not in allowed:
                raise UnknownNameError(self.option, key, allowed, owner=f"{self.kind} {name!r}")

    def build(self, name: str, *args, **options):
        """The entry registered as ``name``, built with ``options`` (unset ones take their defaults)."""
        self.check_options(name, options)
        return self._build(self[name], *args, **options)
