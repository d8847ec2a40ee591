"""Self-supervised crystal representations as matminer featurizers.

``import matssl_featurizers`` is cheap: torch, PyG and matminer load on first use.
"""

__version__ = "0.2.1"

_LAZY = {
    "SSLStructureFeaturizer": "featurizers",
    "CrystalTwinsFeaturizer": "featurizers",
    "CrystalCLRFeaturizer": "featurizers",
    "CDSSLFeaturizer": "featurizers",
    "MaskedDenoisingFeaturizer": "featurizers",
    "CrysAtomFeaturizer": "composition",
    "AtomVectorFeaturizer": "composition",
    "HybridStructureFeaturizer": "hybrid",
    "ShellAnisotropy": "anisotropy",
    "load_atom_vectors": "atom_vectors",
    "list_models": "weights",
    "load_encoder": "weights",
    "structure_to_graph": "graphs",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
