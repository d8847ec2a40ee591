"""Fine-tuning a pretrained encoder end to end on labelled structures, as scikit-learn estimators.

:class:`SSLRegressor` and :class:`SSLClassifier` take pymatgen Structures as ``X``, put a small head on a pretrained
encoder and train both (the protocol of Crystal Twins, Magar et al. 2022, and of CGCNN, Xie & Grossman 2018, with
early stopping on a held-out share of the training rows). A fitted estimator saves as a weights folder
(:meth:`save_pretrained`): the fine-tuned encoder, which ``SSLStructureFeaturizer(weights=folder)`` reads, its head
and the target scaling; :meth:`from_pretrained` gives the fitted estimator back. Nothing is pickled.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import NotFittedError
from torch import nn

from .base import entries_as_list
from .bundled import sha256
from .params import CheckedParams, boolean, integer, number, one_of
from .runtime import check_device, idle_cores, torch_threads
from .sources import CHECKSUMS_NAME, DEFAULT_MODEL

HEAD_NAME = "head.safetensors"
ESTIMATOR_NAME = "estimator.json"
MEMBERS = "members"  # subfolder of the other ensemble members


def _weights(name, value) -> None:
    from .encoders import PretrainedEncoder

    if not isinstance(value, (str, os.PathLike, PretrainedEncoder)):
        raise ValueError(f"{name} must be a bundled name, a folder, 'hf://OWNER/REPO[@REVISION]' or a PretrainedEncoder, "
                         f"got {type(value).__name__}")


def _device(name, value) -> None:
    check_device(value)


def _structures(X) -> tuple[list, list]:
    """The structures of ``X`` (a list, a Series or a one-column DataFrame) and the label naming each row."""
    import pandas as pd

    if isinstance(X, pd.DataFrame) and X.shape[1] != 1:
        raise ValueError(f"X must have one column of Structures, got a DataFrame with {X.shape[1]} columns")
    labels = list(X.index) if isinstance(X, (pd.Series, pd.DataFrame)) else list(range(len(X)))
    return entries_as_list(X), labels


class PropertyModel(nn.Module):
    """An encoder and a 2-layer MLP head, ``y = W_2 softplus(W_1 encoder(G) + b_1) + b_2``: a batch of ``B`` crystal
    graphs -> ``[B, outputs]`` (standardised targets, or class logits)."""

    def __init__(self, encoder, hidden: int, outputs: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(encoder.out_features, hidden), nn.Softplus(), nn.Linear(hidden, outputs))

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.encoder(batch))


class FineTunedEstimator(CheckedParams, BaseEstimator):
    """What :class:`SSLRegressor` and :class:`SSLClassifier` share: the arguments, the training loop, prediction,
    saving and loading.

    Args:
        weights: where the pretrained encoder comes from: a bundled name, a folder (also one written by
            :meth:`save_pretrained`, whose encoder is then fine-tuned again), ``hf://OWNER/REPO[@REVISION]`` or a
            ``PretrainedEncoder``.
        hidden: width of the head's hidden layer.
        lr: learning rate of the head (AdamW).
        encoder_lr: learning rate of the encoder (``None``: ``lr``).
        weight_decay: AdamW's decoupled weight decay.
        lr_schedule: ``"plateau"`` (halve both rates after ``n_iter_no_change // 2`` epochs without a better
            validation score), ``"cosine"`` (to 0 at ``max_epochs``) or ``"constant"``.
        freeze_epochs: epochs that train the head alone before the encoder joins.
        batch_size: structures per step.
        max_epochs: at most this many epochs.
        n_iter_no_change: stop after this many epochs without a better validation score; the best epoch is kept.
        validation_fraction: share of the training rows held out for that score (``None``: none, train
            ``max_epochs`` and keep the last epoch).
        n_ensemble: members trained from the same encoder with different seeds; predictions are their mean, and
            ``predict(X, return_std=True)`` also gives their spread.
        random_state: seed of the heads, the batch order and the validation rows (an int makes a CPU fit with a
            fixed ``n_threads`` reproducible); ``None``: a new draw per fit.
        device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
        n_threads: torch threads while fitting and predicting (``None``: the cores no other process is using when
            ``fit`` starts).
        verbose: progress bars for the crystal graphs and the epochs (with the validation score).
        warm_start: a second ``fit`` continues from the fitted models (and their target scaling) instead of
            starting again from ``weights``.
        drop_invalid: drop, with a warning, the training rows whose structure has no crystal graph (and predict
            NaN for such rows) instead of refusing them, naming the row.

    Fitted attributes: ``models_`` (one torch module per member), ``history_`` (per member, one dict per epoch),
    ``best_epochs_``, ``n_outputs_``, ``fit_seconds_``.
    """

    _parameter_checks = {
        "weights": _weights, "hidden": integer(1), "lr": number(0), "encoder_lr": lambda n, v: v is None or number(0)(n, v),
        "weight_decay": number(0, low_open=False), "lr_schedule": one_of("plateau", "cosine", "constant"),
        "freeze_epochs": integer(0), "batch_size": integer(2), "max_epochs": integer(1), "n_iter_no_change": integer(1),
        "validation_fraction": lambda n, v: v is None or number(0, 1, high_open=True)(n, v), "n_ensemble": integer(1),
        "random_state": integer(0, allow_none=True), "device": _device, "n_threads": integer(1, allow_none=True),
        "verbose": boolean, "warm_start": boolean, "drop_invalid": boolean,
    }

    def __init__(self, weights=DEFAULT_MODEL, hidden: int = 64, lr: float = 1e-3, encoder_lr: float | None = None,
                 weight_decay: float = 0.0, lr_schedule: str = "plateau", freeze_epochs: int = 0, batch_size: int = 64,
                 max_epochs: int = 100, n_iter_no_change: int = 10, validation_fraction: float | None = 0.1,
                 n_ensemble: int = 1, random_state: int | None = None, device: str = "cpu", n_threads: int | None = None,
                 verbose: bool = False, warm_start: bool = False, drop_invalid: bool = False):
        self.weights = weights
        self.hidden = hidden
        self.lr = lr
        self.encoder_lr = encoder_lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.freeze_epochs = freeze_epochs
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.n_ensemble = n_ensemble
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.verbose = verbose
        self.warm_start = warm_start
        self.drop_invalid = drop_invalid

    # -- what subclasses define -------------------------------------------------------------
    def _targets(self, y, labels: list, fitting: bool) -> np.ndarray:
        """``y`` as a float array ``[n, outputs]`` the loss reads (fitting sets the scaling or classes); a row
        without a usable target raises naming it (``labels``)."""
        raise NotImplementedError

    def _loss(self, out, target, weight):
        raise NotImplementedError

    def _score(self, out, target) -> float:
        """The validation score to minimise (in the target's own units)."""
        raise NotImplementedError

    # -- input ---------------------------------------------------------------------------------
    def _graphs(self, X, purpose: str, settings: dict) -> tuple[list, np.ndarray]:
        """Crystal-graph arrays (``settings``: cutoff and neighbours) of the rows of ``X`` and which rows have one;
        a row without one raises naming it (``drop_invalid``: a warning)."""
        from tqdm.auto import tqdm

        from .neighbors import graph_batches

        structures, labels = _structures(X)
        progress = tqdm(total=len(structures), desc="crystal graphs", unit="structure", disable=not self.verbose)
        graphs = []
        for batch in graph_batches(structures, 256, **settings):
            graphs += batch
            progress.update(len(batch))
        progress.close()
        ok = np.array([not isinstance(g, Exception) for g in graphs], dtype=bool)
        bad = [(labels[i], graphs[i]) for i in np.flatnonzero(~ok)]
        if bad and not self.drop_invalid:
            label, err = bad[0]
            raise ValueError(f"cannot {purpose} row {label!r}: {err}" + (f" ({len(bad) - 1} more rows fail)" if len(bad) > 1
                             else "") + ". Pass drop_invalid=True to drop such rows with a warning.")
        if bad:
            warnings.warn(f"{len(bad)} row(s) have no crystal graph and are {'dropped' if purpose == 'fit' else 'NaN'}: "
                          + ", ".join(f"{label!r} ({err})" for label, err in bad[:3]) + (" ..." if len(bad) > 3 else ""))
        return graphs, ok

    def _check_y(self, X, y, sample_weight):
        structures, labels = _structures(X)
        y = np.asarray(y)
        if y.ndim == 0 or y.ndim > 2:
            raise ValueError(f"y must be one value per row, or a 2-D array of several targets; got shape {y.shape}")
        if len(y) != len(structures):
            raise ValueError(f"X has {len(structures)} rows but y has {len(y)}")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=float)
            if sample_weight.shape != (len(structures),) or not np.all(np.isfinite(sample_weight)) or (sample_weight < 0).any():
                raise ValueError("sample_weight must be one finite, non-negative number per row")
        return y, labels, sample_weight

    # -- the encoder ---------------------------------------------------------------------------
    def _start_encoder(self):
        """The pretrained encoder to fine-tune, without its principal components (they describe the pretrained
        vectors, not the fine-tuned ones)."""
        from .encoders import PretrainedEncoder

        source = self.weights
        encoder = copy.deepcopy(source) if isinstance(source, PretrainedEncoder) else PretrainedEncoder.from_pretrained(source)
        tuned = encoder.with_readout()
        label = source if isinstance(source, (str, os.PathLike)) else encoder.label_prefix()
        tuned.info = dataclasses.replace(tuned.info, provenance={"fine_tuned_from": str(label),
                                                                 "fine_tuned_from_fingerprint": encoder.fingerprint()})
        return tuned

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fine-tune on the Structures ``X`` and targets ``y`` (``[n]`` or ``[n, k]``); returns ``self``."""
        self._check_params()
        y, labels, sample_weight = self._check_y(X, y, sample_weight)
        warm = self.warm_start and hasattr(self, "models_")
        started = time.perf_counter()
        threads = self.n_threads or idle_cores()
        with torch_threads(threads):
            start = None if warm else self._start_encoder()
            target = self._targets(y, labels, fitting=not warm)
            graphs, ok = self._graphs(X, "fit", (self.models_[0].encoder if warm else start).graph_settings)
            rows = np.flatnonzero(ok)
            if len(rows) < 2:
                raise ValueError(f"at least 2 rows with a crystal graph are needed to fit, got {len(rows)}")
            rng = np.random.default_rng(self.random_state)
            seed = int(rng.integers(2**31)) if self.random_state is None else self.random_state
            fit_rows, val_rows = self._validation_split(rows, rng)
            members = self.models_ if warm else [None] * self.n_ensemble
            self.models_, self.history_, self.best_epochs_ = [], [], []
            for member, previous in enumerate(members):
                torch.manual_seed(seed + member)
                model = previous if previous is not None else PropertyModel(copy.deepcopy(start), self.hidden,
                                                                            target.shape[1])
                history, best_epoch = self._train(model.to(self.device), graphs, target, sample_weight, fit_rows,
                                                  val_rows, np.random.default_rng(seed + member), member)
                self.models_.append(model.eval())
                self.history_.append(history)
                self.best_epochs_.append(best_epoch)
        self.n_outputs_ = target.shape[1]
        self.n_threads_ = threads
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def _validation_split(self, rows: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        if self.validation_fraction is None:
            return rows, rows[:0]
        n_val = max(1, int(round(self.validation_fraction * len(rows))))
        if n_val >= len(rows):
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no row to train on ({len(rows)} rows)")
        order = rng.permutation(rows)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def _batches(self, rows: np.ndarray, rng=None) -> list[np.ndarray]:
        """``rows`` in near-equal batches of at most ``batch_size`` (shuffled with ``rng``), never a lone leftover
        (batch norm needs two)."""
        rows = rng.permutation(rows) if rng is not None else rows
        return np.array_split(rows, max(1, int(np.ceil(len(rows) / self.batch_size))))

    def _outputs(self, model, graphs: list, rows: np.ndarray) -> torch.Tensor:
        from .graphs import collate_arrays

        model.eval()
        with torch.inference_mode():
            parts = [model(collate_arrays([graphs[i] for i in part]).to(self.device)).float().cpu()
                     for part in self._batches(rows) if len(part)]
        return torch.cat(parts) if parts else torch.zeros(0)

    def _train(self, model, graphs, target, sample_weight, fit_rows, val_rows, rng, member: int) -> tuple[list, int]:
        """The training loop of one member: AdamW on the head (``lr``) and encoder (``encoder_lr``), the head alone
        for ``freeze_epochs``, the learning-rate schedule, early stopping on the validation score; the best epoch's
        weights are loaded back. Returns one record per epoch and the epoch kept."""
        from tqdm.auto import tqdm

        from .graphs import collate_arrays

        encoder_lr = self.lr if self.encoder_lr is None else self.encoder_lr
        optimizer = torch.optim.AdamW([{"params": model.head.parameters(), "lr": self.lr, "base": self.lr},
                                       {"params": model.encoder.parameters(), "lr": encoder_lr, "base": encoder_lr}],
                                      weight_decay=self.weight_decay)
        target = torch.as_tensor(target, dtype=torch.float32)
        weights = None if sample_weight is None else torch.as_tensor(sample_weight, dtype=torch.float32)
        history, best, best_state, best_epoch, waited, scale = [], np.inf, None, 0, 0, 1.0
        bar = tqdm(range(1, self.max_epochs + 1), desc=f"fine-tuning{f' member {member}' if self.n_ensemble > 1 else ''}",
                   unit="epoch", disable=not self.verbose, leave=False)
        for epoch in bar:
            started = time.perf_counter()
            frozen = epoch <= self.freeze_epochs
            if self.lr_schedule == "cosine":
                scale = 0.5 * (1 + np.cos(np.pi * (epoch - 1) / self.max_epochs))
            for group in optimizer.param_groups:
                group["lr"] = group["base"] * scale
            model.train()
            model.encoder.requires_grad_(not frozen)
            total, count = 0.0, 0
            for part in self._batches(fit_rows, rng):
                batch = collate_arrays([graphs[i] for i in part]).to(self.device)
                out = model(batch)
                loss = self._loss(out, target[part].to(self.device), None if weights is None else weights[part].to(self.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = total + loss.item() * len(part), count + len(part)
            model.encoder.requires_grad_(True)
            record = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": optimizer.param_groups[0]["lr"],
                      "frozen": frozen}
            if len(val_rows):  # else the last epoch is kept
                score = self._score(self._outputs(model, graphs, val_rows), target[val_rows])
                record["val_score"] = score
                if score < best:
                    best, best_epoch, waited = score, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif not frozen:
                    waited += 1
                    if self.lr_schedule == "plateau" and waited % max(1, self.n_iter_no_change // 2) == 0:
                        scale /= 2
                bar.set_postfix(val=f"{score:.4g}", best=f"{best:.4g}")
            else:
                best_epoch = epoch
            history.append({**record, "seconds": time.perf_counter() - started})
            if waited >= self.n_iter_no_change:
                break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        return history, best_epoch

    # -- predict -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with appropriate "
                                 "arguments before using this estimator.")

    def _member_outputs(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Every member's raw outputs ``[members, n, k]`` (NaN for rows without a graph) and which rows have one."""
        self._check_fitted()
        with torch_threads(self.n_threads or getattr(self, "n_threads_", None) or 1):
            graphs, ok = self._graphs(X, "predict", self.models_[0].encoder.graph_settings)
            rows = np.flatnonzero(ok)
            out = np.full((len(self.models_), len(graphs), self.n_outputs_), np.nan)
            for m, model in enumerate(self.models_):
                if len(rows):
                    out[m, rows] = self._outputs(model, graphs, rows).double().numpy()
        return out, ok

    # -- save and load -------------------------------------------------------------------------
    def _state(self) -> dict:
        """What :meth:`save_pretrained` writes besides the tensors (JSON values)."""
        params = {k: v for k, v in self.get_params().items() if k != "weights"}
        return {"estimator": type(self).__name__, "params": params, "n_outputs": self.n_outputs_,
                "best_epochs": self.best_epochs_, "history": self.history_}

    def save_pretrained(self, directory) -> Path:
        """Write the fitted estimator to ``directory``: the fine-tuned encoder (``config.json``, ``metadata.json``,
        ``model.safetensors``: what ``SSLStructureFeaturizer(weights=directory)`` reads), ``head.safetensors``,
        ``estimator.json`` (arguments, target scaling or classes, training history), a card, ``checksums.json``;
        further ensemble members under ``members/K/``. No pickle."""
        from safetensors.torch import save_file

        from .sources import write_checksums

        self._check_fitted()
        directory = Path(directory)
        for k, model in enumerate(self.models_):
            folder = directory if k == 0 else directory / MEMBERS / str(k)
            model.encoder.card = self._card() if k == 0 else None
            model.encoder.save_pretrained(folder)
            save_file({n: t.detach().cpu().contiguous() for n, t in model.head.state_dict().items()}, folder / HEAD_NAME)
        (directory / ESTIMATOR_NAME).write_text(json.dumps(self._state(), indent=1) + "\n")
        write_checksums(directory)
        manifest = json.loads((directory / CHECKSUMS_NAME).read_text())
        manifest.update({name: sha256(directory / name) for name in (HEAD_NAME, ESTIMATOR_NAME)})
        (directory / CHECKSUMS_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        return directory

    def _card(self) -> str:
        first = self.models_[0].encoder.info.provenance.get("fine_tuned_from", "?")
        best = ", ".join(str(e) for e in self.best_epochs_)
        return (f"---\nlibrary_name: matssl-featurizers\ntags: [materials-science, crystal-graph, fine-tuned]\n---\n"
                f"# A fine-tuned {type(self).__name__}\n\nThe encoder `{first}` fine-tuned end to end with a "
                f"{self.hidden}-unit head by matssl-featurizers' `{type(self).__name__}` ({len(self.models_)} member(s); "
                f"best epochs {best}). `{type(self).__name__}.from_pretrained(folder)` predicts with it; "
                "`SSLStructureFeaturizer(weights=folder)` reads its encoder (the vector of the fine-tuned weights).\n\n"
                f"Arguments: `{json.dumps(self._state()['params'], sort_keys=True)}`\n")

    @classmethod
    def from_pretrained(cls, directory):
        """The fitted estimator a :meth:`save_pretrained` folder holds (its files checked against ``checksums.json``)."""
        from safetensors.torch import load_file

        from .encoders import PretrainedEncoder
        from .sources import resolve

        directory = resolve(directory).directory
        state = json.loads((directory / ESTIMATOR_NAME).read_text())
        if state["estimator"] != cls.__name__:
            raise ValueError(f"{directory} holds a {state['estimator']}, not a {cls.__name__}")
        estimator = cls(weights=str(directory), **state["params"])
        estimator._load_state(state)
        estimator.models_ = []
        members = [directory] + sorted((directory / MEMBERS).iterdir(), key=lambda p: int(p.name)) \
            if (directory / MEMBERS).is_dir() else [directory]
        for folder in members:
            model = PropertyModel(PretrainedEncoder.from_pretrained(folder), estimator.hidden, state["n_outputs"])
            model.head.load_state_dict(load_file(folder / HEAD_NAME))
            estimator.models_.append(model.to(estimator.device).eval())
        estimator.n_outputs_, estimator.best_epochs_, estimator.history_ = (state["n_outputs"], state["best_epochs"],
                                                                            state["history"])
        return estimator

    def _load_state(self, state: dict) -> None:
        raise NotImplementedError


class SSLRegressor(RegressorMixin, FineTunedEstimator):
    """A pretrained crystal encoder fine-tuned end to end to predict one or several properties of Structures.

    ``fit(X, y)`` standardises each target on the training rows and minimises the (``sample_weight``-weighted) mean
    squared error; the validation score is the mean absolute error in the targets' units (averaged over targets).
    ``predict(X)`` returns ``[n]`` (or ``[n, k]`` for a 2-D ``y``); ``predict(X, return_std=True)`` also the
    standard deviation over the ``n_ensemble`` members (0 with one member). ``score`` is R², as every scikit-learn
    regressor's. Arguments: :class:`FineTunedEstimator`. Fitted: ``y_mean_``, ``y_scale_`` besides its attributes.

    References: Magar, Wang & Barati Farimani, npj Comput. Mater. 8, 231 (2022); Xie & Grossman, PRL 120, 145301 (2018).
    """

    def _targets(self, y, labels: list, fitting: bool) -> np.ndarray:
        try:
            y = np.asarray(y, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("y must hold numbers (SSLClassifier takes labels)") from None
        y2 = y.reshape(len(y), -1)
        bad = np.flatnonzero(~np.isfinite(y2).all(axis=1))
        if len(bad):
            raise ValueError(f"y is NaN or infinite in {len(bad)} row(s): "
                             + ", ".join(repr(labels[i]) for i in bad[:5]) + (" ..." if len(bad) > 5 else ""))
        if fitting:
            self.y_mean_ = y2.mean(axis=0)
            scale = y2.std(axis=0)
            self.y_scale_ = np.where(scale > 0, scale, 1.0)
            self.y_ndim_ = y.ndim
        elif y2.shape[1] != len(self.y_mean_):
            raise ValueError(f"warm_start: y has {y2.shape[1]} targets, the fitted models {len(self.y_mean_)}")
        return (y2 - self.y_mean_) / self.y_scale_

    def _loss(self, out, target, weight):
        squared = ((out - target) ** 2).mean(dim=1)
        return squared.mean() if weight is None else (weight * squared).sum() / weight.sum().clamp(min=1e-12)

    def _score(self, out, target) -> float:
        return float(((out - target).abs() * torch.as_tensor(self.y_scale_, dtype=torch.float32)).mean())

    def predict(self, X, return_std: bool = False):
        """Predictions for the Structures ``X`` (NaN for a row without a crystal graph under ``drop_invalid``)."""
        out, _ = self._member_outputs(X)
        values = out * self.y_scale_ + self.y_mean_
        mean, std = values.mean(axis=0), values.std(axis=0)
        if self.y_ndim_ == 1:
            mean, std = mean[:, 0], std[:, 0]
        return (mean, std) if return_std else mean

    def _state(self) -> dict:
        return {**super()._state(), "y_mean": self.y_mean_.tolist(), "y_scale": self.y_scale_.tolist(), "y_ndim": self.y_ndim_}

    def _load_state(self, state: dict) -> None:
        self.y_mean_, self.y_scale_ = np.array(state["y_mean"]), np.array(state["y_scale"])
        self.y_ndim_ = state["y_ndim"]


class SSLClassifier(ClassifierMixin, FineTunedEstimator):
    """A pretrained crystal encoder fine-tuned end to end to classify Structures (e.g. metal / non-metal).

    ``fit(X, y)`` takes any labels (``classes_``, sorted), minimises the (``sample_weight``-weighted) cross-entropy
    and scores the validation rows by their cross-entropy; ``predict_proba`` averages the members' probabilities;
    ``score`` is the accuracy. Arguments: :class:`FineTunedEstimator`.
    """

    def _targets(self, y, labels: list, fitting: bool) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"SSLClassifier takes one label per row, got shape {y.shape}")
        missing = np.flatnonzero([v is None or (isinstance(v, float) and not np.isfinite(v)) for v in y])
        if len(missing):
            raise ValueError(f"y is missing in {len(missing)} row(s): " + ", ".join(repr(labels[i]) for i in missing[:5]))
        if fitting:
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise ValueError(f"y has one class only ({self.classes_[0]!r}); a classifier needs two or more")
        unknown = set(np.unique(y)) - set(self.classes_)
        if unknown:
            raise ValueError(f"warm_start: y has classes the fitted models do not know: {sorted(unknown)}")
        return np.eye(len(self.classes_))[np.searchsorted(self.classes_, y)]

    def _loss(self, out, target, weight):
        losses = -(target * torch.log_softmax(out, dim=1)).sum(dim=1)
        return losses.mean() if weight is None else (weight * losses).sum() / weight.sum().clamp(min=1e-12)

    def _score(self, out, target) -> float:
        return float(self._loss(out, target, None))

    def predict_proba(self, X):
        """Class probabilities ``[n, len(classes_)]``, the mean over the members (NaN for a row without a graph)."""
        out, _ = self._member_outputs(X)
        shifted = out - np.nanmax(out, axis=2, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=2, keepdims=True)
        return probabilities.mean(axis=0)

    def predict(self, X):
        probabilities = self.predict_proba(X)
        ok = np.isfinite(probabilities).all(axis=1)
        if not ok.all():
            raise ValueError("some rows have no crystal graph: use predict_proba, which gives them NaN")
        return self.classes_[probabilities.argmax(axis=1)]

    def _state(self) -> dict:
        return {**super()._state(), "classes": self.classes_.tolist()}

    def _load_state(self, state: dict) -> None:
        self.classes_ = np.array(state["classes"])
