"""2-D PCA of the bundled CrysAtom atom vectors, each element labelled and coloured by its family
(CrysAtom paper, Fig. 5). Each dimension is standardised over the elements first, so that no single
dimension dominates. Writes atom_vectors_pca.png (or the path given as the first argument).

    python examples/atom_vectors_pca.py [out.png]
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pymatgen.core import Element  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from matssl_featurizers import load_atom_vectors  # noqa: E402

FAMILIES = [  # first match wins
    ("alkali metal", Element.is_alkali.fget),
    ("alkaline-earth metal", Element.is_alkaline.fget),
    ("lanthanide", Element.is_lanthanoid.fget),
    ("actinide", Element.is_actinoid.fget),
    ("transition metal", Element.is_transition_metal.fget),
    ("post-transition metal", Element.is_post_transition_metal.fget),
    ("metalloid", Element.is_metalloid.fget),
    ("halogen", Element.is_halogen.fget),
    ("noble gas", Element.is_noble_gas.fget),
    ("other non-metal", lambda element: True),
]


def family(symbol: str) -> str:
    element = Element(symbol)
    return next(name for name, test in FAMILIES if test(element))


def plot(out: Path) -> None:
    """Draw the PCA of the CrysAtom vectors into the image file ``out``."""
    table = load_atom_vectors("crysatom")
    projection = make_pipeline(StandardScaler(), PCA(n_components=2)).fit(table.to_numpy())
    xy = projection.transform(table.to_numpy())
    families = [family(symbol) for symbol in table.index]
    fig, ax = plt.subplots(figsize=(11, 8.5))
    colours = plt.get_cmap("tab10")
    for k, (name, _) in enumerate(FAMILIES):
        chosen = [i for i, f in enumerate(families) if f == name]
        if chosen:
            ax.scatter(xy[chosen, 0], xy[chosen, 1], s=60, color=colours(k), label=f"{name} ({len(chosen)})")
    for (x, y), symbol in zip(xy, table.index):
        ax.annotate(symbol, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=8)
    ratio = projection[-1].explained_variance_ratio_
    ax.set_xlabel(f"PC 1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({ratio[1]:.0%} of variance)")
    ax.set_title(f"CrysAtom atom vectors ({table.shape[1]}-dim, {len(table)} elements), standardised, first two principal components")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default=Path("atom_vectors_pca.png"), type=Path,
                        help="image file to write (default: %(default)s)")
    plot(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
