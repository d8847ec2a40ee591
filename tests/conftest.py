"""Shared fixtures: real structures cut from the shared DFT datasets (see fixtures/cut_fixtures.py)."""

import gzip
import json
import warnings
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
STRUCTURES_FILE = FIXTURES / "structures.jsonl.gz"
RELEASE_0_1 = FIXTURES / "crystalclr-0.1"  # the crystalclr folder of release 0.1 as it shipped: the old head readout
RELEASE_0_2_1 = FIXTURES / "masked-denoising-0.2.1"  # a folder of release 0.2.1: metadata inside config.json


def flat_cell():
    """NaCl in a cell whose third lattice vector is zero: a valid composition, no crystal graph."""
    from pymatgen.core import Lattice, Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # pymatgen's angles of a zero-length lattice vector
        return Structure(Lattice([[3, 0, 0], [0, 3, 0], [0, 0, 0]]), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0]])


def read_rows():
    with gzip.open(STRUCTURES_FILE, "rt") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="session")
def rows():
    return read_rows()


@pytest.fixture(scope="session")
def structures(rows):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [Structure.from_str(r["cif"], fmt="cif") for r in rows]


@pytest.fixture(scope="session")
def structures_df(rows, structures):
    import pandas as pd

    return pd.DataFrame(
        {"structure": structures, "formula": [s.composition.reduced_formula for s in structures]},
        index=pd.Index([r["id"] for r in rows], name="id"),
    )


def save_model(encoder, folder, card="# card\n", method=None):
    """``encoder`` written to ``folder`` with ``save_pretrained`` (a card and, optionally, a method); the folder."""
    from matssl_featurizers.encoders import ModelInfo

    encoder.card = card
    if method is not None:
        encoder.info = ModelInfo(method=method)
    encoder.save_pretrained(folder)
    return folder
