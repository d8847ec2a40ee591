"""``argparse`` types shared by the command lines of :mod:`pretraining`: a value that could not work (no epochs,
an empty batch, one fold) is refused with the option's name before any data is read."""

from __future__ import annotations

import argparse


def at_least(minimum: int):
    """An ``argparse`` type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in "invalid ... value" errors
    return parse


def positive_float(text: str) -> float:
    """An ``argparse`` type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def share(text: str) -> float:
    """An ``argparse`` type: a share above 0 and at most 1 (of the features a forest tries at a split)."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def held_out_share(text: str) -> float:
    """An ``argparse`` type: a share above 0 and below 1 (rows held out, so that some are left to train on)."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and below 1, got {text}")
    return value
