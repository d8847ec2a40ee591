"""2-D maps of structure embeddings, one panel per featurizer, coloured by compound class and by formation energy.

Like Fig. 3 of the CrystalCLR paper (Koker et al. 2022, "Graph Contrastive Learning for Materials",
arXiv:2211.13408). Embeds a random sample of Materials Project
structures with every bundled self-supervised model and, for comparison, with the same CGCNN with random
weights and with matminer's Magpie composition features; standardises each feature, reduces each embedding to 2-D (UMAP when umap-learn is installed, else
scikit-learn t-SNE) and draws two figures:

* embedding_map_class.png: points coloured by compound class (see ``compound_class``);
* embedding_map_formation_energy.png: points coloured by the DFT formation energy per atom.

Each panel title also gives a score computed in the full standardised feature space (not in the 2-D map): the
mean fraction of a structure's 10 nearest neighbours of its class, or the mean absolute error of the
neighbours' mean formation energy.

    python examples/embedding_map.py [--data DATA.jsonl.gz] [--n 2000] [--seed 0] [--out examples/output] [--dpi 150]

The default data is ../shared/data/mp_cgcnn.jsonl.gz (relative to the repository root); the default run takes
about a minute on one CPU core.
"""

import argparse
import math
import os
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matminer.featurizers.composition import ElementProperty  # noqa: E402
from pymatgen.core import Composition, Element  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from matssl_featurizers import PretrainedEncoder, SSLStructureFeaturizer, list_models  # noqa: E402
from pretraining.data import iter_records, payload_to_structure  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = (ROOT / ".." / "shared" / "data" / "mp_cgcnn.jsonl.gz").resolve()

CLASSES = ["oxide", "chalcogenide", "halide", "pnictide", "hydride", "intermetallic", "other"]  # legend order
ANIONS = {  # most electronegative non-metal -> class
    "O": "oxide",
    **dict.fromkeys(["S", "Se", "Te"], "chalcogenide"),
    **dict.fromkeys(["F", "Cl", "Br", "I"], "halide"),
    **dict.fromkeys(["N", "P", "As", "Sb"], "pnictide"),
    "H": "hydride",
}
ARCHITECTURES = {"cgcnn": "CGCNN", "megnet": "MEGNet"}  # as written in panel titles


def compound_class(composition: Composition) -> str:
    """Compound class of a composition, from its elements alone.

    Rule: if every element is a metal (pymatgen ``Element.is_metal``: alkali, alkaline-earth, transition,
    post-transition metals, lanthanides, actinides), the class is "intermetallic" (elemental metals included).
    Otherwise take the most electronegative (Pauling) element among the non-metals and metalloids, the anion:
    O -> "oxide"; S, Se, Te -> "chalcogenide"; F, Cl, Br, I -> "halide"; N, P, As, Sb -> "pnictide";
    H -> "hydride"; anything else (B, C, Si, Ge, noble gases, ...) -> "other". So hydroxides count as
    oxides, oxyhalides as halides only when the halogen outranks O (only F does), and carbides, borides
    and silicides as "other".
    """
    elements = [Element(str(el)) for el in composition.elements]
    non_metals = [el for el in elements if not el.is_metal]
    if not non_metals:
        return "intermetallic"
    anion = max(non_metals, key=lambda el: el.X if not math.isnan(el.X) else -math.inf)
    return ANIONS.get(anion.symbol, "other")


def read_sample(path: Path, n: int, seed: int):
    """``n`` rows of a JSON Lines dataset, drawn uniformly without replacement: ids, structures and rows."""
    records = list(iter_records(path))
    chosen = np.sort(np.random.default_rng(seed).choice(len(records), size=min(n, len(records)), replace=False))
    ids, structures, rows = [], [], []
    for i in chosen:
        row_id, payload, row = records[i]
        try:
            structures.append(payload_to_structure(payload))
        except Exception as err:
            print(f"skipping {row_id}: {type(err).__name__}: {err}")
            continue
        ids.append(row_id)
        rows.append(row)
    print(f"read {len(structures)} of {len(records)} structures from {path}")
    return ids, structures, rows


def neighbour_scores(x: np.ndarray, classes: np.ndarray, energy: np.ndarray, k: int = 10) -> tuple[float, float]:
    """How well the k nearest neighbours of each point (in ``x``, itself left out) predict its class and
    formation energy: the mean fraction of neighbours of the same class, and the MAE of their mean energy."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    same_class = (classes[index] == classes[:, None]).mean()
    return float(same_class), float(np.nanmean(np.abs(np.nanmean(energy[index], axis=1) - energy)))


def project_2d(x: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """2-D map of (standardised) features: UMAP if importable, else t-SNE."""
    try:
        import umap

        return umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(x), "UMAP"
    except ImportError:
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=30, init="pca", random_state=seed, n_jobs=1).fit_transform(x), "t-SNE"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, type=Path, help="JSON Lines (.jsonl[.gz]) with a cif per row")
    parser.add_argument("--n", default=2000, type=int, help="number of structures to sample")
    parser.add_argument("--seed", default=0, type=int, help="seed of the sample and of the 2-D map")
    parser.add_argument("--out", default=HERE / "output", type=Path, help="directory for the two PNGs")
    parser.add_argument("--dpi", default=150, type=int, help="resolution of the PNGs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()

    ids, structures, rows = read_sample(args.data, args.n, args.seed)
    compositions = [s.composition for s in structures]
    energy = np.array([row.get("formation_energy_per_atom", np.nan) for row in rows], dtype=float)

    features, names = {}, {}  # names: panel titles
    models = list_models()
    for model in models.index:
        architecture = models.loc[model, "architecture"]
        names[model] = f"{model} ({ARCHITECTURES.get(architecture, architecture)})"
        featurizer = SSLStructureFeaturizer(model=model)
        features[model] = np.array(featurizer.featurize_many(structures, ignore_errors=True), dtype=float)
    # the control: the default model's CGCNN with random weights (seed 0)
    random_weights = PretrainedEncoder.from_pretrained(models.index[models["default"]][0]).random_like(0)
    control = SSLStructureFeaturizer(weights=random_weights, label_prefix="random-cgcnn")
    names["random-cgcnn"] = "random weights (CGCNN, seed 0)"
    features["random-cgcnn"] = np.array(control.featurize_many(structures, ignore_errors=True), dtype=float)
    magpie = ElementProperty.from_preset("magpie", impute_nan=True)
    magpie.set_n_jobs(1)
    names["magpie"] = "Magpie (composition only)"
    features["magpie"] = np.array(magpie.featurize_many(compositions, ignore_errors=True), dtype=float)

    keep = np.ones(len(structures), dtype=bool)
    for name, x in features.items():
        bad = ~np.isfinite(x).all(axis=1)
        print(f"{name}: {x.shape[1]} features, NaN on {bad.sum()} structures")
        keep &= ~bad
    print(f"dropped {(~keep).sum()} structures with NaN features; mapping {keep.sum()}")
    classes = np.array([compound_class(c) for c, k in zip(compositions, keep) if k])
    energy = energy[keep]
    counts = Counter(classes)
    print("class counts:", ", ".join(f"{c} {counts[c]}" for c in CLASSES))
    chance = sum((n / len(classes)) ** 2 for n in counts.values())
    print(f"chance that two random structures share a class: {chance:.2f}")

    maps, titles, method = {}, {}, None
    print("10-NN scores, in the standardised feature space / in the 2-D map: fraction of neighbours of the same "
          "class, MAE (eV/atom) of the neighbours' mean formation energy")
    for name, x in features.items():
        x = StandardScaler().fit_transform(x[keep])
        maps[name], method = project_2d(x, args.seed)
        purity, mae = neighbour_scores(x, classes, energy)
        purity_2d, mae_2d = neighbour_scores(maps[name], classes, energy)
        print(f"  {name:22s} same class {purity:.2f} / {purity_2d:.2f}   MAE {mae:.3f} / {mae_2d:.3f}")
        titles[name] = (f"{names[name]}, {x.shape[1]}-dim", f"10-NN same class {purity:.2f}",
                        f"10-NN MAE {mae:.2f} eV/atom")
    print(f"2-D map: {method}")

    args.out.mkdir(parents=True, exist_ok=True)
    n_cols = 3
    n_rows = math.ceil(len(maps) / n_cols)
    subtitle = (f"{keep.sum()} structures ({args.data.name}, seed {args.seed}), "
                f"standardised features, {method} map; 10-NN scores in the full feature space")

    # figure 1: coloured by compound class
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(17, 5.6 * n_rows), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (name, xy) in zip(axes.flat, maps.items()):
        for k, cls in enumerate(CLASSES):
            chosen = classes == cls
            if chosen.any():
                ax.scatter(xy[chosen, 0], xy[chosen, 1], s=4, color=colours(k), label=f"{cls} ({chosen.sum()})",
                           alpha=0.8, linewidths=0, rasterized=True)
        ax.set_title(f"{titles[name][0]}\n{titles[name][1]}", fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(maps):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), markerscale=3, fontsize=10, frameon=False)
    fig.suptitle(f"Structure embeddings coloured by compound class (most electronegative non-metal)\n{subtitle}",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path = args.out / "embedding_map_class.png"
    fig.savefig(path, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {path}")

    # figure 2: coloured by formation energy per atom (shared colour scale, 1st-99th percentile)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(17.5, 5.6 * n_rows), squeeze=False)
    vmin, vmax = np.nanpercentile(energy, [1, 99])
    for ax, (name, xy) in zip(axes.flat, maps.items()):
        points = ax.scatter(xy[:, 0], xy[:, 1], s=4, c=energy, cmap="viridis", vmin=vmin, vmax=vmax,
                            linewidths=0, rasterized=True)
        ax.set_title(f"{titles[name][0]}\n{titles[name][2]}", fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(maps):]:
        ax.set_visible(False)
    fig.suptitle(f"Structure embeddings coloured by formation energy\n{subtitle}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    bar = fig.colorbar(points, cax=fig.add_axes((0.93, 0.1, 0.015, 0.78)), extend="both")
    bar.set_label("formation energy per atom (eV/atom)")
    path = args.out / "embedding_map_formation_energy.png"
    fig.savefig(path, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {path}")
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
