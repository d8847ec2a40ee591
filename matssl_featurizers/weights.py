"""Weights I/O: one loader for bundled models, local directories and the Hugging Face Hub.

A model directory holds ``config.json`` (the encoder's constructor arguments plus its
``architecture``, and since format 2 the pretraining ``method``, the graph's ``max_neighbors`` and the
``format_version``), ``model.safetensors`` (the tensors; never pickle), ``README.md``
(the model card) and ``checksums.json`` (sha256 of config and tensors, written by
:func:`save_encoder`). Sources:

* a bundled name (``"crystal-twins"``): files inside this package, sha256 checked
  against ``models/index.json``;
* a local directory, sha256 checked against its ``checksums.json`` when it has one;
* ``"hf://OWNER/REPO[@REVISION]"``: downloaded (or read from the cache) with ``huggingface_hub``,
  checked like a local directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
CHECKSUMS_NAME = "checksums.json"
CHECKSUMMED = (CONFIG_NAME, WEIGHTS_NAME)  # the card is edited after export (evaluation table), so not checksummed
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
HUB_PREFIX = "hf://"
DEFAULT_MODEL = "masked-denoising"  # chosen on the dev split: eval/dev/default-model
FORMAT_VERSION = 2
METADATA_KEYS = ("method", "max_neighbors", "format_version")  # in config.json, not constructor arguments


def bundled_root() -> Path:
    """The folder of the installed package that holds the bundled models and their ``index.json``."""
    return Path(str(resources.files("matssl_featurizers") / "models"))


def bundled_index() -> dict:
    """The bundled models: name -> entry of ``models/index.json``."""
    return json.loads((bundled_root() / "index.json").read_text())


def encoder_arguments(config: dict) -> dict:
    """The constructor arguments (and ``architecture``) of a ``config.json``, without its metadata."""
    return {k: v for k, v in config.items() if k not in METADATA_KEYS}


def feature_length(config: dict) -> int:
    """Length of the structure vector of the encoder ``config`` describes."""
    from .encoders import ENCODERS

    return ENCODERS[config["architecture"]].vector_length(encoder_arguments(config))


def list_models():
    """A ``pandas.DataFrame`` of the bundled models: method, architecture, readout, vector length, stored
    principal components, training data, source."""
    import pandas as pd

    rows = []
    for name, entry in bundled_index().items():
        config = json.loads((bundled_root() / entry["directory"] / CONFIG_NAME).read_text())
        rows.append(
            {
                "model": name,
                "method": entry["method"],
                "architecture": config["architecture"],
                "readout": config.get("readout", "head" if config["architecture"] == "cgcnn" else "set2set"),
                "n_features": feature_length(config),
                "n_components": config.get("readout_components", 0),
                "trained_on": entry["trained_on"],
                "weights": f"bundled: matssl_featurizers/models/{entry['directory']}",
                "default": name == DEFAULT_MODEL,
            }
        )
    return pd.DataFrame(rows).set_index("model")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parse_hub(source: str) -> tuple[str, str | None]:
    repo = source[len(HUB_PREFIX):]
    repo, _, revision = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"hub source {source!r} must look like hf://OWNER/REPO or hf://OWNER/REPO@REVISION")
    return repo, revision or None


def _download_from_hub(source: str) -> Path:
    """The snapshot directory of ``source``; every failure is one ``OSError`` sentence, raised without retrying."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, revision = _parse_hub(source)
    try:
        path = snapshot_download(
            repo_id=repo, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, CHECKSUMS_NAME]
        )
    except LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        raise OSError(
            f"cannot load weights from {source}: "
            + ("HF_HUB_OFFLINE is set and the local Hugging Face cache has no copy of it."
               if offline else "the Hub cannot be reached and the local Hugging Face cache has no copy of it.")
        ) from None
    except RevisionNotFoundError:
        raise OSError(f"cannot load weights from {source}: the repository has no revision {revision!r}.") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise OSError(f"cannot load weights from {source}: the Hub has no repository {repo!r} "
                      "(or it is private or gated and no valid token was given).") from None
    except (HfHubHTTPError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(f"cannot load weights from {source}: {reason}") from None
    return Path(path)


def verify_checksums(directory: Path, source) -> None:
    """Refuse ``directory`` when a file does not match the sha256 its ``checksums.json`` records."""
    manifest_path = directory / CHECKSUMS_NAME
    if not manifest_path.is_file():
        return
    try:
        manifest = json.loads(manifest_path.read_text())
        ok = isinstance(manifest, dict) and all(
            isinstance(name, str) and isinstance(digest, str) and Path(name).name == name
            for name, digest in manifest.items()
        )
    except ValueError:
        ok = False
    if not ok:
        raise OSError(f"weights {str(source)!r}: {CHECKSUMS_NAME} is not a JSON object of file name -> sha256")
    for name, expected in manifest.items():
        if not (directory / name).is_file():
            raise OSError(f"weights {str(source)!r}: {name}, listed in {CHECKSUMS_NAME}, not found in {directory}")
        if sha256(directory / name) != expected.lower():
            raise OSError(
                f"weights {str(source)!r}: {name} does not match the sha256 recorded in {CHECKSUMS_NAME} "
                "(the file was corrupted or changed after export); refusing to load it"
            )


def resolve(source: str | os.PathLike | None = None) -> Path:
    """The local directory holding the model files of ``source`` (bundled name, path or hf:// address)."""
    source = DEFAULT_MODEL if source is None else source
    if isinstance(source, str) and source.startswith(HUB_PREFIX):
        directory = _download_from_hub(source)
    elif isinstance(source, str) and source in bundled_index():
        entry = bundled_index()[source]
        directory = bundled_root() / entry["directory"]
        for name, expected in entry["sha256"].items():
            if not (directory / name).is_file():
                raise OSError(f"bundled model {source!r} is missing {name}: the installation is incomplete")
            if sha256(directory / name) != expected:
                raise OSError(f"bundled model {source!r}: {name} does not match its recorded sha256 (corrupted install?)")
    else:
        directory = Path(source)
        if not directory.is_dir():
            known = ", ".join(sorted(bundled_index()))
            raise OSError(
                f"weights {str(source)!r} are neither a bundled model ({known}), a directory, nor hf://OWNER/REPO"
            )
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / name).is_file():
            pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
            raise OSError(
                f"weights {str(source)!r}: {name} not found in {directory}"
                + (f"; only safetensors weights are loaded, never pickles ({', '.join(pickles)} ignored)"
                   if name == WEIGHTS_NAME and pickles else "")
            )
    if not (isinstance(source, str) and source in bundled_index()):
        verify_checksums(directory, source)
    return directory


def read_config(source: str | os.PathLike | None = None) -> dict:
    """The ``config.json`` of ``source``; a config older than format 2 gets its ``method`` from the bundled
    index (bundled models) or ``None``, and ``max_neighbors`` 12."""
    config = json.loads((resolve(source) / CONFIG_NAME).read_text())
    if "format_version" not in config:
        bundled = bundled_index().get(source) if isinstance(source, str) else None
        config = {**config, "method": bundled["method"] if bundled else None, "max_neighbors": 12, "format_version": 1}
    return config


def fingerprint(source: str | os.PathLike | None = None) -> str:
    """sha256 of the sha256 of ``config.json`` and of ``model.safetensors`` of ``source``: what a pickled
    featurizer pins its weights by."""
    directory = resolve(source)
    return hashlib.sha256(" ".join(sha256(directory / name) for name in CHECKSUMMED).encode()).hexdigest()


def load_encoder(source: str | os.PathLike | None = None, device: str = "cpu"):
    """Build the encoder described by ``config.json`` and load ``model.safetensors`` into it (eval mode).

    Raises ``OSError`` when files cannot be found and ``ValueError`` when config and tensors disagree.
    """
    from safetensors.torch import load_file

    from .encoders import build_encoder

    directory = resolve(source)
    config = json.loads((directory / CONFIG_NAME).read_text())
    try:
        encoder = build_encoder(config)
    except ValueError as err:
        raise ValueError(f"weights {str(source)!r}: {err}") from None
    state = load_file(directory / WEIGHTS_NAME)
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"weights {str(source)!r}: config.json does not match model.safetensors "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong_shape[:5]})"
        )
    encoder.load_state_dict(state)
    return encoder.to(device).eval()


def save_encoder(encoder, directory: str | os.PathLike, card: str | None = None, method: str | None = None,
                 max_neighbors: int = 12) -> Path:
    """Write ``config.json`` (the encoder's config, ``method``, ``max_neighbors``, the format version) +
    ``model.safetensors`` + ``checksums.json`` (their sha256), and ``README.md`` when ``card`` is given,
    to ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {**encoder.config, "method": method, "max_neighbors": max_neighbors, "format_version": FORMAT_VERSION}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
    checksums = {name: sha256(directory / name) for name in CHECKSUMMED}
    (directory / CHECKSUMS_NAME).write_text(json.dumps(checksums, indent=2) + "\n")
    if card is not None:
        (directory / CARD_NAME).write_text(card)
    return directory
