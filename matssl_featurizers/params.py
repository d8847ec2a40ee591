"""Parameter checks of the featurizers and estimators, scikit-learn's way: ``__init__`` only stores, the checks run
at first use and in ``set_params``.

A class lists a check per parameter in ``_parameter_checks``; a check is called with the parameter's name and
value and raises ``ValueError`` naming the parameter (the idea of scikit-learn's ``_parameter_constraints``, whose
module is private).
"""

from __future__ import annotations

import numbers
import os
from typing import Callable

Check = Callable[[str, object], None]


def integer(minimum: int, allow_none: bool = False) -> Check:
    """An integer of at least ``minimum`` (or ``None`` where allowed)."""

    def check(name, value):
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}")

    return check


def number(low: float | None = None, high: float | None = None, *, low_open: bool = True,
           high_open: bool = False) -> Check:
    """A real number in the interval from ``low`` to ``high`` (open at ``low`` and closed at ``high`` by default)."""

    def check(name, value):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            bounds = f"{'(' if low_open else '['}{'-inf' if low is None else low}, {'inf' if high is None else high}{')' if high_open else ']'}"
            raise ValueError(f"{name} must be a number in {bounds}, got {value!r}")

    return check


def boolean(name, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def optional_string(name, value) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or None, got {value!r}")


def path_or_name(name, value) -> None:
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a name or a path, got {value!r}")


def one_of(*choices) -> Check:
    def check(name, value):
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")

    return check


class CheckedParams:
    """Mixin for scikit-learn-style classes: :meth:`set_params` refuses values the class's ``_parameter_checks``
    reject (leaving the object unchanged), and :meth:`_check_params` runs the same checks at first use."""

    _parameter_checks: dict[str, Check] = {}

    def _check_params(self, params: dict | None = None) -> None:
        params = self.get_params(deep=False) if params is None else params
        for name, value in params.items():
            if name in self._parameter_checks:
                self._parameter_checks[name](name, value)

    def set_params(self, **params):
        own = {k: v for k, v in params.items() if "__" not in k}
        unknown = sorted(set(own) - set(self.get_params(deep=False)))
        if not unknown:  # scikit-learn's own message names unknown parameters
            self._check_params({**self.get_params(deep=False), **own})
        return super().set_params(**params)
