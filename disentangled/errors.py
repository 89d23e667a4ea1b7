"""The project's errors, and the one shape of their messages.

An error a user can act on (a parameter out of range, an unknown name, a missing file, a
study directory of another spec) is a :class:`DisentangledError`. The command line prints it
as one line, ``error: <message>``, and exits with its ``exit_code``; any other exception is a
bug and keeps its traceback.

A parameter check names the parameter, the rule and the value given, then optionally why
the rule exists or how to fix it::

    beta_vae: beta must be >= 0, got -1.0
    train.batch_size must be >= 2 (the covariance estimates need two samples), got 1
    --draws must be an integer >= 1, got 0.5; draws are counted

An unknown name names its kind, the known names and the close matches::

    unknown metric 'mgi'; known metrics: beta_vae, factor_vae, mig, .... Did you mean 'mig'?
    metric 'mig' has no setting 'bins'; its settings are ['num_train', ...]. Did you mean 'num_bins'?

The check helpers report a value of the wrong type with the type in the rule ("an integer
>= 1") and a value of the right type with the bound alone (">= 1"). They take ``error=`` so
that a module whose errors carry their own class (``ConfigError``, ``SpecError``) keeps it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, Callable, ClassVar, Iterable


class DisentangledError(Exception):
    """Base of the errors a user can act on; the message says what is wrong and how to fix it."""

    #: the command line's exit status for this error
    exit_code: ClassVar[int] = 2


class ParameterError(DisentangledError, ValueError):
    """A parameter, option or setting has a value its rule refuses."""


class MissingFileError(DisentangledError, FileNotFoundError):
    """A file or folder a command reads is not there; the message says how to make it."""


class UnknownNameError(ParameterError, KeyError):
    """A name that is not registered: ``unknown <kind> 'x'; known <kind>s: ...``.

    With ``owner`` (``"metric 'mig'"``) it is an unknown option of that entry:
    ``<owner> has no <kind> 'x'; its <kind>s are [...]``. It is a KeyError too, so a
    registry behaves as a Mapping (``get``, ``in``) and ``except KeyError`` keeps working.
    """

    def __init__(self, kind: str, name: Any, known: Iterable[str], owner: str | None = None):
        self.kind, self.name, self.known, self.owner = kind, name, tuple(known), owner
        if owner is None:
            message = f"unknown {kind} {name!r}; known {kind}s: {', '.join(self.known) or 'none'}."
        else:
            message = f"{owner} has no {kind} {name!r}; its {kind}s are {list(self.known) or 'none'}."
        super().__init__(message + close_matches(str(name), self.known))

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])

    def __reduce__(self):  # rebuilt from its parts when a worker process sends it back
        return type(self), (self.kind, self.name, self.known, self.owner)


def close_matches(word: str, options: Iterable[str], n: int = 3) -> str:
    """``" Did you mean 'a', 'b'?"`` for the options close to ``word``, or ``""``."""
    found = difflib.get_close_matches(str(word), [str(o) for o in options], n=n, cutoff=0.5)
    return f" Did you mean {', '.join(repr(f) for f in found)}?" if found else ""


# ---------------------------------------------------------------------------------------
# Checks: each raises ``error("<name> must be <rule>[ (<why>)], got <value!r>[; <fix>]")``


def message(name: str, rule: str, value: Any, *, why: str = "", fix: str = "") -> str:
    """The one shape of a parameter error's message."""
    return f"{name} must be {rule}{f' ({why})' if why else ''}, got {value!r}{f'; {fix}' if fix else ''}"


def check(name: str, value: Any, ok: Callable[[Any], bool], rule: str, *, why: str = "", fix: str = "",
          error: type[Exception] = ParameterError) -> None:
    """Raise unless ``ok(value)``; a value ``ok`` cannot compare (a string for a number) fails."""
    try:
        passed = bool(ok(value))
    except (TypeError, ValueError):
        passed = False
    if not passed:
        raise error(message(name, rule, value, why=why, fix=fix))


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None, why: str = "",
              fix: str = "", error: type[Exception] = ParameterError) -> None:
    """An integer (not a bool) in ``[low, high]``; either bound may be left open."""
    bounds = _bounds(low, high, False, False)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(message(name, " ".join(filter(None, ("an integer", bounds))), value, why=why, fix=fix))
    if not _within(value, low, high, False, False):
        raise error(message(name, bounds, value, why=why, fix=fix))


def check_float(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, why: str = "", fix: str = "",
                error: type[Exception] = ParameterError) -> None:
    """A finite real number (not a bool) between ``low`` and ``high``; ``*_open`` excludes the bound."""
    bounds = _bounds(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise error(message(name, " ".join(filter(None, ("a finite number", bounds))), value, why=why, fix=fix))
    if not _within(value, low, high, low_open, high_open):
        raise error(message(name, bounds, value, why=why, fix=fix))


def check_choice(name: str, value: Any, choices: Iterable[Any], *, why: str = "", fix: str = "",
                 error: type[Exception] = ParameterError) -> None:
    """One of ``choices``; a string close to one of them is told which."""
    choices = list(choices)
    try:
        passed = value in choices
    except TypeError:
        passed = False
    if not passed:
        hint = close_matches(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
        raise error(message(name, f"one of {choices}", value, why=why, fix=fix) + (f".{hint}" if hint else ""))


def _bounds(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def _within(value, low, high, low_open, high_open) -> bool:
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    return above and below
