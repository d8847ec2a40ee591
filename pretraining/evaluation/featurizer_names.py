"""The featurizer names of the evaluation commands, parsed in one place.

Names (``A+B`` concatenates the features of A and B):

* a bundled model (``crystal-twins``) or a weights folder; ``MODEL#K``: its first K principal components;
* ``random:MODEL@SEED``: the architecture of MODEL with random weights drawn with SEED (``random:MODEL`` is
  expanded to one name per seed by :func:`expand_seeds`);
* ``inputs:MODEL``: the statistics (mean, std, min, max, range over the sites) of the per-element input table
  MODEL's encoder reads (CGCNN's 92 features, CrysAtom vectors, or its learned embedding): the control an
  encoder must beat to be worth running;
* ``preset:NAME``: ``HybridStructureFeaturizer.from_preset(NAME)``;
* ``CrysAtom`` / ``CGCNN92``: composition statistics of those element tables;
* ``ShellAnisotropy``: the parameter-free anisotropy of each site's neighbour shells (no weights);
* ``ElementProperty`` (magpie), ``SineCoulombMatrix``, ``SiteStatsFingerprint`` (CrystalNN ops; about 0.3 s per
  structure), ``DensityFeatures`` (density, volume per atom, packing fraction): matminer's own.

``readout`` overrides (``{"readout": "layers", "pool": [...], "pool_edges": False}``) rebuild every encoder,
pretrained or random, with another parameter-free readout of the same weights.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import NamedTuple

MATMINER_BASELINES = ("ElementProperty", "SineCoulombMatrix", "SiteStatsFingerprint", "DensityFeatures")
COMPOSITION_TABLES = {"CrysAtom": "crysatom", "CGCNN92": "cgcnn92"}
GEOMETRY = ("ShellAnisotropy",)
KINDS = ("random", "inputs", "preset")  # the prefixes of ``kind:argument`` names
SLOW = {"SiteStatsFingerprint": 0.3}  # seconds per structure, for a warning


class Name(NamedTuple):
    """One featurizer name, parsed: ``kind`` is ``"matminer"``, ``"composition"``, ``"geometry"``, ``"model"``,
    ``"random"``, ``"inputs"`` or ``"preset"``; ``argument`` the model, preset or table; ``seed`` of
    ``random:``; ``components`` of ``MODEL#K``."""

    text: str
    kind: str
    argument: str
    seed: int | None = None
    components: int | None = None


def parse(text: str) -> Name:
    """The :class:`Name` of one part of a name (no ``+``)."""
    if "+" in text:
        raise ValueError(f"{text!r} joins several featurizers: split it with parts()")
    if text in MATMINER_BASELINES:
        return Name(text, "matminer", text)
    if text in COMPOSITION_TABLES:
        return Name(text, "composition", COMPOSITION_TABLES[text])
    if text in GEOMETRY:
        return Name(text, "geometry", text)
    prefix, sep, rest = text.partition(":")
    if sep and prefix in KINDS:
        if prefix != "random":
            return Name(text, prefix, rest)
        model, at, seed = rest.rpartition("@")
        if not at or not seed.lstrip("-").isdigit():
            raise ValueError(f"{text!r}: random weights need a seed, random:MODEL@SEED")
        return Name(text, "random", model, seed=int(seed))
    model, hash_sign, components = text.partition("#")
    if hash_sign and not components.isdigit():
        raise ValueError(f"{text!r}: MODEL#K needs a number of principal components")
    return Name(text, "model", model, components=int(components) if hash_sign else None)


def parts(name: str) -> list[Name]:
    """The parsed parts of ``A+B+...``."""
    return [parse(part) for part in name.split("+")]


def expand_seeds(names: list[str], seeds: list[int]) -> list[str]:
    """``random:MODEL`` (also inside ``A+B``) -> one name per seed, ``random:MODEL@SEED``."""
    out = []
    for name in names:
        pieces = name.split("+")
        unseeded = [i for i, p in enumerate(pieces) if p.startswith("random:") and "@" not in p]
        if not unseeded:
            out.append(name)
            continue
        out += ["+".join(f"{p}@{seed}" if i in unseeded else p for i, p in enumerate(pieces)) for seed in seeds]
    return out


def _trained(source: str):
    """The encoder of ``source``, loaded once per content of its files: a folder rewritten in the same process
    (e.g. by ``readout_pca``) is read again, so that features and their cache key follow the files."""
    return _load_trained(source, _files_key(source))


@functools.lru_cache(maxsize=64)
def _load_trained(source: str, files_key: tuple):
    from matssl_featurizers.encoders import PretrainedEncoder

    return PretrainedEncoder.from_pretrained(source)


def _files_key(source: str) -> tuple:
    """The sha256 of the checksummed files of a folder source; ``()`` for a bundled name (its files are checked
    against the package's index at every load) and an ``hf://`` address (a revision of the Hub)."""
    from matssl_featurizers.bundled import sha256
    from matssl_featurizers.sources import CHECKSUMMED, HUB_PREFIX, bundled_names

    if source.startswith(HUB_PREFIX) or source in bundled_names():
        return ()
    folder = Path(source)
    return tuple((name, sha256(folder / name)) for name in CHECKSUMMED if (folder / name).is_file())


def encoder_of(name: Name, readout: dict | None = None):
    """The ``PretrainedEncoder`` a ``model`` or ``random`` name runs (``readout``: its overrides)."""
    readout = readout or {}
    trained = _trained(name.argument)
    if name.kind == "random":
        return trained.random_like(name.seed, **readout)
    return trained.with_readout(**readout) if readout else trained


def make(name: Name, readout: dict | None = None):
    """The featurizer a parsed name stands for."""
    if name.kind == "matminer":
        return _matminer(name.text)
    if name.kind == "composition":
        from matssl_featurizers.composition import AtomVectorFeaturizer

        return AtomVectorFeaturizer.from_preset(name.argument)
    if name.kind == "geometry":
        from matssl_featurizers.anisotropy import ShellAnisotropy

        return ShellAnisotropy()
    if name.kind == "preset":
        from matssl_featurizers.hybrid import HybridStructureFeaturizer

        return HybridStructureFeaturizer.from_preset(name.argument)
    if name.kind == "inputs":
        return _input_table_featurizer(name.argument)
    from matssl_featurizers.featurizers import SSLStructureFeaturizer

    source = Path(name.argument).name
    return SSLStructureFeaturizer(weights=encoder_of(name, readout), n_components=name.components,
                                  label_prefix=f"random-{source}" if name.kind == "random" else source)


def _matminer(text: str):
    if text == "ElementProperty":
        from matminer.featurizers.composition import ElementProperty

        return ElementProperty.from_preset("magpie", impute_nan=True)
    if text == "SineCoulombMatrix":
        from matminer.featurizers.structure import SineCoulombMatrix

        return SineCoulombMatrix(flatten=True)
    if text == "SiteStatsFingerprint":
        from matminer.featurizers.structure import SiteStatsFingerprint

        return SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")
    from matminer.featurizers.structure import DensityFeatures

    return DensityFeatures()


def _input_table_featurizer(model: str):
    """Composition statistics of the per-element table the encoder of ``model`` reads (``inputs:``)."""
    import pandas as pd
    from pymatgen.core import Element

    from matssl_featurizers.composition import AtomVectorFeaturizer
    from matssl_featurizers.elements import N_ELEMENTS

    encoder = _trained(model)
    if encoder.config.get("atom_input", "embedding") != "embedding":
        return AtomVectorFeaturizer(vectors=encoder.config["atom_input"])
    weights = encoder.embedding.weight.detach().double().numpy()
    symbols = [Element.from_Z(z).symbol for z in range(1, N_ELEMENTS + 1)]
    return AtomVectorFeaturizer(vectors=pd.DataFrame(weights[1:N_ELEMENTS + 1], index=pd.Index(symbols, name="element")))


@functools.lru_cache(maxsize=1)
def package_source() -> str:
    """A digest of ``matssl_featurizers``' Python source: features cached by other code are never reused."""
    import matssl_featurizers

    root = Path(matssl_featurizers.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def identity(name: Name, readout: dict | None = None) -> str:
    """Everything besides the structures that decides the features of ``name``: the feature cache's other key."""
    import matminer
    import torch

    import matssl_featurizers
    from matssl_featurizers.atom_vectors import atom_vectors_path
    from matssl_featurizers.bundled import sha256

    readout = readout or {}
    if name.kind == "matminer":
        return f"{name.text} matminer {matminer.__version__}"
    version = f"matssl-featurizers {matssl_featurizers.__version__} source {package_source()} torch {torch.__version__}"
    if name.kind == "composition":
        table = sha256(atom_vectors_path(name.argument)) if name.argument != "cgcnn92" else matminer.__version__
        return f"{name.text} {table} {version}"
    if name.kind in ("geometry", "preset"):
        return f"{name.text} {version}"
    if name.kind == "inputs":
        return f"inputs {_trained(name.argument).fingerprint()} {version}"
    encoder = encoder_of(name, readout)
    return f"{name.kind} {encoder.fingerprint()} components {name.components} {json.dumps(readout, sort_keys=True)} {version}"


def readout_changes(readout: str | None, pool: str | None = None, pool_edges: bool = True) -> dict:
    """The readout overrides of ``--readout``/``--pool``/``--no-pool-edges`` (empty without ``--readout``)."""
    if readout is None:
        if pool is not None or not pool_edges:
            raise SystemExit("--pool and --no-pool-edges need --readout layers")
        return {}
    changes = {"readout": readout}
    if readout == "layers":
        changes["pool_edges"] = pool_edges
        if pool is not None:
            changes["pool"] = [p.strip() for p in pool.split(",")]
    return changes


def distinct_architectures(models: list[str]) -> list[str]:
    """The models whose architecture (config without stored principal components) no earlier model in the list
    has: one per architecture, so that random weights of an architecture (seeded the same) are evaluated once."""
    firsts, seen = [], []
    for model in models:
        config = _trained(model).readout_config()
        if config not in seen:
            seen.append(config)
            firsts.append(model)
    return firsts


def bundled_structure_models() -> list[str]:
    """The bundled structure models, the default first."""
    from matssl_featurizers.sources import DEFAULT_MODEL, bundled_names

    return sorted(bundled_names(), key=lambda m: (m != DEFAULT_MODEL, m))
