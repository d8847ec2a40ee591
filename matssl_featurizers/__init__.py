"""Self-supervised crystal representations as matminer featurizers.

``import matssl_featurizers`` is cheap: torch, matminer and pymatgen load on first use.
"""

__version__ = "0.3.0"

_LAZY = {
    "PretrainedEncoder": "encoders",
    "list_models": "encoders",
    "SSLStructureFeaturizer": "featurizers",
    "CrystalTwinsFeaturizer": "featurizers",
    "CrystalCLRFeaturizer": "featurizers",
    "CDSSLFeaturizer": "featurizers",
    "MaskedDenoisingFeaturizer": "featurizers",
    "CrysAtomFeaturizer": "composition",
    "AtomVectorFeaturizer": "composition",
    "HybridStructureFeaturizer": "hybrid",
    "SSLRegressor": "finetuning",
    "SSLClassifier": "finetuning",
    "ShellAnisotropy": "anisotropy",
    "load_atom_vectors": "atom_vectors",
    "structure_to_graph": "graphs",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
