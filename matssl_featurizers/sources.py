"""Where weights come from, resolved once to a local folder whose files match their recorded sha256.

A source is

* a bundled name (``"masked-denoising"``, ``list_models()``): files inside this package, checked against
  ``models/index.json``;
* a local folder, checked against its ``checksums.json`` when it has one;
* ``"hf://OWNER/REPO[@REVISION]"``: a snapshot downloaded (or read from the local Hugging Face cache) with
  ``huggingface_hub``, checked like a local folder.

A model folder holds ``config.json`` (the encoder's constructor arguments), ``metadata.json`` (pretraining
method, graph settings, format version, provenance; folders written before release 0.3 keep these inside
``config.json``), ``model.safetensors`` (never a pickle), ``README.md`` (the model card) and ``checksums.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import bundled
from .bundled import check_bundled_file, sha256

CONFIG_NAME = "config.json"
METADATA_NAME = "metadata.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
CHECKSUMS_NAME = "checksums.json"
CHECKSUMMED = (CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME)  # the card is edited after export, so not checksummed
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
HUB_PREFIX = "hf://"
DEFAULT_MODEL = "masked-denoising"  # chosen on the dev split: eval/dev/default-model


@dataclass(frozen=True)
class Source:
    """A resolved source: the local folder of its files and, for a bundled model, its name."""

    given: str
    directory: Path
    bundled: str | None = None


def bundled_names() -> list[str]:
    """Names of the bundled models, sorted."""
    return sorted(bundled.bundled_models())


def unknown_model_message(name) -> str:
    """The sentence for a ``model=`` that names no bundled model."""
    return (f"model={name!r} is not a bundled model; bundled: {', '.join(bundled_names())} "
            "(a folder or an hf://OWNER/REPO address goes in weights=)")


def parse_hub(source: str) -> tuple[str, str | None]:
    """``(OWNER/REPO, REVISION or None)`` of ``hf://OWNER/REPO[@REVISION]``."""
    repo, _, revision = source[len(HUB_PREFIX):].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"hub source {source!r} must look like hf://OWNER/REPO or hf://OWNER/REPO@REVISION")
    return repo, revision or None


def download_from_hub(source: str) -> Path:
    """The snapshot folder of ``source``; every failure is one ``OSError`` sentence, raised without retrying."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    repo, revision = parse_hub(source)
    try:
        path = snapshot_download(repo_id=repo, revision=revision,
                                 allow_patterns=[CONFIG_NAME, METADATA_NAME, WEIGHTS_NAME, CARD_NAME, CHECKSUMS_NAME])
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
            for name, digest in manifest.items())
    except ValueError:
        ok = False
    if not ok:
        raise OSError(f"weights {str(source)!r}: {CHECKSUMS_NAME} is not a JSON object of file name -> sha256")
    for name, expected in manifest.items():
        if not (directory / name).is_file():
            raise OSError(f"weights {str(source)!r}: {name}, listed in {CHECKSUMS_NAME}, not found in {directory}")
        if sha256(directory / name) != expected.lower():
            raise OSError(f"weights {str(source)!r}: {name} does not match the sha256 recorded in {CHECKSUMS_NAME} "
                          "(the file was corrupted or changed after export); refusing to load it")


def write_checksums(directory: Path) -> None:
    """Record the sha256 of the checksummed files of ``directory`` in its ``checksums.json``."""
    checksums = {name: sha256(directory / name) for name in CHECKSUMMED if (directory / name).is_file()}
    (directory / CHECKSUMS_NAME).write_text(json.dumps(checksums, indent=2) + "\n")


def resolve(source: str | os.PathLike | None = None) -> Source:
    """The verified local folder of ``source`` (``None``: the default bundled model)."""
    source = DEFAULT_MODEL if source is None else source
    index = bundled.bundled_models()
    if isinstance(source, str) and source.startswith(HUB_PREFIX):
        directory = download_from_hub(source)
    elif isinstance(source, str) and source in index:
        entry = index[source]
        directory = bundled.bundled_root() / entry["directory"]
        for name, expected in entry["sha256"].items():
            check_bundled_file(directory / name, expected, f"bundled model {source!r}")
        return Source(source, directory, source)
    else:
        directory = Path(source)
        if not directory.is_dir():
            raise OSError(f"weights {str(source)!r} are neither a bundled model ({', '.join(bundled_names())}), "
                          "a folder, nor hf://OWNER/REPO")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / name).is_file():
            pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
            raise OSError(
                f"weights {str(source)!r}: {name} not found in {directory}"
                + (f"; only safetensors weights are loaded, never pickles ({', '.join(pickles)} ignored)"
                   if name == WEIGHTS_NAME and pickles else ""))
    verify_checksums(directory, source)
    return Source(str(source), directory)
