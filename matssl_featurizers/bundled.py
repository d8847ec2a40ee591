"""The files this package ships: the bundled models and atom-vector tables, and the sha256 each is checked against.

``models/index.json`` lists the bundled models (name -> folder, method, training data, sha256 of its files);
``models/atom_vectors.json`` the bundled atom-vector tables (name -> file, training data, sha256).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path


def bundled_root() -> Path:
    """The folder of the installed package that holds the bundled models and their indexes."""
    return Path(str(resources.files("matssl_featurizers") / "models"))


def bundled_models() -> dict:
    """The bundled models: name -> entry of ``models/index.json``."""
    return json.loads((bundled_root() / "index.json").read_text())


def bundled_atom_vectors() -> dict:
    """The bundled atom-vector tables: name -> entry of ``models/atom_vectors.json`` (file, sha256, training data)."""
    return json.loads((bundled_root() / "atom_vectors.json").read_text())


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_bundled_file(path: Path, expected: str, what: str) -> None:
    """Raise ``OSError`` when a file of the installation is missing or does not match its recorded sha256."""
    if not path.is_file():
        raise OSError(f"{what} is missing {path.name}: the installation is incomplete")
    if sha256(path) != expected:
        raise OSError(f"{what}: {path.name} does not match its recorded sha256 (corrupted install?)")
