"""Per-element vectors (CrysAtom): reading, writing and the bundled table.

A table is a CSV file: one row per element, indexed by its symbol (column ``element``), one column
per dimension (``0``, ``1``, ...). Elements the vectors were never learned for are simply absent.
Sources:

* a bundled name (``"crysatom"``): a file inside this package, sha256 checked against
  ``models/atom_vectors.json``;
* a path to such a CSV file, or to a directory holding ``atom_vectors.csv``.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from . import bundled
from .bundled import check_bundled_file

ATOM_VECTORS_NAME = "atom_vectors.csv"
DEFAULT_ATOM_VECTORS = "crysatom"
CGCNN92 = "cgcnn92"


def atom_vectors_path(source: str | os.PathLike = DEFAULT_ATOM_VECTORS) -> Path:
    """The CSV file of ``source`` (a bundled name, a CSV path or a directory holding ``atom_vectors.csv``)."""
    index = bundled.bundled_atom_vectors()
    if isinstance(source, str) and source in index:
        entry = index[source]
        path = bundled.bundled_root() / entry["file"]
        check_bundled_file(path, entry["sha256"], f"bundled atom vectors {source!r}")
        return path
    path = Path(source)
    if path.is_dir():
        path = path / ATOM_VECTORS_NAME
    if not path.is_file():
        raise OSError(f"atom vectors {str(source)!r} are neither bundled ({', '.join(sorted(index))}), "
                      f"a CSV file, nor a directory holding {ATOM_VECTORS_NAME}")
    return path


def cgcnn92_table():
    """CGCNN's 92-dim element features (Xie & Grossman 2018; matminer's data file), indexed by symbol."""
    import pandas as pd
    from pymatgen.core import Element

    path = resources.files("matminer.utils.data_files") / "cgcnn_atom_feature.json"
    rows = {Element.from_Z(int(z)).symbol: v for z, v in json.loads(path.read_text()).items()}
    table = pd.DataFrame.from_dict(rows, orient="index", dtype="float64")
    table.index.name = "element"
    table.columns = [str(c) for c in table.columns]
    return table


def load_atom_vectors(source: str | os.PathLike = DEFAULT_ATOM_VECTORS):
    """The vectors of ``source`` as a ``pandas.DataFrame`` indexed by element symbol (float64), in
    atomic-number order. Elements without a vector are not in the index.

    ``source``: a bundled name (``"crysatom"``), ``"cgcnn92"`` (CGCNN's input features), a CSV file,
    a directory holding ``atom_vectors.csv``, or such a table as a ``DataFrame`` already (checked the same way).
    """
    import pandas as pd
    from pymatgen.core import Element

    if isinstance(source, pd.DataFrame):
        table, source = source.astype("float64"), "(a DataFrame)"
    elif source == CGCNN92:
        table = cgcnn92_table()
    else:
        table = pd.read_csv(atom_vectors_path(source), index_col="element").astype("float64")
    unknown = [symbol for symbol in table.index if not Element.is_valid_symbol(symbol)]
    if unknown or table.index.has_duplicates:
        raise ValueError(f"atom vectors {str(source)!r}: invalid or repeated element symbols {unknown or list(table.index)}")
    if not table.notna().all().all():
        raise ValueError(f"atom vectors {str(source)!r}: missing values (drop the element's row instead)")
    return table.iloc[sorted(range(len(table)), key=lambda i: Element(table.index[i]).Z)]


def save_atom_vectors(table, path: str | os.PathLike) -> Path:
    """Write ``table`` (DataFrame indexed by element symbol) as a CSV file that :func:`load_atom_vectors` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = table.copy()
    out.index.name = "element"
    out.columns = [str(c) for c in range(out.shape[1])]
    out.to_csv(path, float_format="%.10g")
    return path
