import json

import numpy as np
import pytest
import torch
from pymatgen.core import Element

from matssl_featurizers.atom_vectors import load_atom_vectors
from matssl_featurizers.encoders import CGCNNEncoder
from matssl_featurizers.graphs import collate, structure_to_graph
from pretraining import atom_vectors
from tests.conftest import STRUCTURES_FILE


def save_encoder(encoder, folder, card=None):
    """``encoder`` (a ``PretrainedEncoder``) written to ``folder`` with ``card`` as its README.md (none: no card)."""
    encoder.card = card
    try:
        encoder.save_pretrained(folder)
    finally:
        encoder.card = None
    return folder


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return CGCNNEncoder(atom_input="cgcnn92", atom_fea_len=24, n_conv=2, out_dim=0).eval()


def test_vectors_average_every_occurrence_in_the_corpus_not_the_last_batch(encoder, structures):
    chosen = structures[:30]
    batches = [collate([structure_to_graph(s) for s in chosen[i:i + 7]]) for i in range(0, 30, 7)]
    sums, counts = atom_vectors.layer_sums(encoder, batches)
    table = atom_vectors.vectors_table(sums[-1], counts)
    # by hand: every site of every structure, one structure at a time
    per_element = {}
    with torch.inference_mode():
        for s in chosen:
            h = encoder.node_embeddings(collate([structure_to_graph(s)])).double()
            for site, row in zip(s, h):
                per_element.setdefault(site.specie.symbol, []).append(row.numpy())
    from pymatgen.core import Element

    assert list(table.index) == sorted(per_element, key=lambda symbol: Element(symbol).Z)
    for symbol, rows in per_element.items():
        np.testing.assert_allclose(table.loc[symbol].to_numpy(), np.mean(rows, axis=0), rtol=1e-5, atol=1e-6)
        assert table.attrs["count"][symbol] == len(rows)
    # an element spread over several batches: its vector is not that of the last batch alone
    oxygen_batches = [b for b in batches if (b.atomic_numbers == 8).any()]
    assert len(oxygen_batches) > 1
    last_sums, last_counts = atom_vectors.layer_sums(encoder, oxygen_batches[-1:])
    last = atom_vectors.vectors_table(last_sums[-1], last_counts)
    assert not np.allclose(last.loc["O"], table.loc["O"])
    # the input layer does not see the environment: its average is the element's own input embedding
    inputs = atom_vectors.vectors_table(sums[0], counts)
    with torch.inference_mode():
        own = encoder.embed_atoms(torch.tensor([Element(s).Z for s in inputs.index])).double().numpy()
    np.testing.assert_allclose(inputs.to_numpy(), own, rtol=1e-5, atol=1e-6)
    assert len(sums) == encoder.config["n_conv"] + 1


def test_structure_weighting_counts_every_structure_once(encoder, structures):
    chosen = structures[:30]
    batches = [collate([structure_to_graph(s) for s in chosen[i:i + 7]]) for i in range(0, 30, 7)]
    sums, counts = atom_vectors.layer_sums(encoder, batches, weighting="structures")
    table = atom_vectors.vectors_table(sums[-1], counts)
    # by hand: the element's mean within each structure, then the mean of those over the structures
    per_structure = {}
    with torch.inference_mode():
        for s in chosen:
            h = encoder.node_embeddings(collate([structure_to_graph(s)])).double().numpy()
            symbols = np.array([site.specie.symbol for site in s])
            for symbol in set(symbols):
                per_structure.setdefault(symbol, []).append(h[symbols == symbol].mean(axis=0))
    for symbol, means in per_structure.items():
        np.testing.assert_allclose(table.loc[symbol].to_numpy(), np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
        assert table.attrs["count"][symbol] == len(means)
    site_sums, site_counts = atom_vectors.layer_sums(encoder, batches)
    by_site = atom_vectors.vectors_table(site_sums[-1], site_counts)
    assert (by_site.attrs["count"] > table.attrs["count"]).any() and not np.allclose(by_site, table), \
        "an element with several sites per structure is weighted differently"
    with pytest.raises(ValueError, match="one of sites, structures"):
        atom_vectors.layer_sums(encoder, batches, weighting="cells")


def test_the_command_writes_a_table_and_a_card_naming_the_missing_elements(tmp_path, encoder, structures):
    weights = save_encoder(encoder, tmp_path / "encoder", card="# encoder\n## Training data\n- fixtures\n## Training procedure\n- 1 epoch\n## Evaluation\nnone\n")
    out = tmp_path / "vectors"
    assert atom_vectors.main(["--weights", str(weights), "--data", str(STRUCTURES_FILE), "--out", str(out),
                              "--batch-size", "16", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    table = load_atom_vectors(out)
    seen = sorted({site.specie.Z for s in structures for site in s})
    assert len(table) == len(seen) and table.shape[1] == 24 and np.isfinite(table.to_numpy()).all()
    card = (out / "README.md").read_text()
    assert "pretraining.atom_vectors --weights" in card and "### Training procedure" in card and "- 1 epoch" in card
    assert "none" not in card.split("## Extraction")[0], "the encoder's evaluation is not copied"
    assert "main-group elements the nearest vector" in card
    per_layer = card.split("after each layer alone (input embedding, then convolutions 1-2): ")[1].split(".\n")[0]
    assert len(per_layer.split(", ")) == 3 and all(share.endswith("%") for share in per_layer.split(", "))
    never = [sym for z, sym in [(2, "He"), (10, "Ne"), (18, "Ar")] if z not in seen]
    assert never and all(sym in card.split("no vector")[1].split("\n")[0] for sym in never)
    assert "element term" not in card, "an encoder trained with the paper's losses only"
    assert atom_vectors.WEIGHTINGS["sites"] in card
    assert atom_vectors.main(["--weights", str(weights), "--data", str(STRUCTURES_FILE), "--out", str(tmp_path / "per"),
                              "--weighting", "structures", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    per_structure = (tmp_path / "per" / "README.md").read_text()
    assert atom_vectors.WEIGHTINGS["structures"] in per_structure and "(structure, element) pairs" in per_structure
    assert not np.allclose(load_atom_vectors(tmp_path / "per"), table)


def test_every_layer_vectors_are_each_layers_unit_average_concatenated(tmp_path, encoder, structures):
    weights = save_encoder(encoder, tmp_path / "encoder")
    common = ["--weights", str(weights), "--data", str(STRUCTURES_FILE), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert atom_vectors.main(common + ["--out", str(tmp_path / "last")]) == 0
    assert atom_vectors.main(common + ["--out", str(tmp_path / "all"), "--layers", "all"]) == 0
    last, every = load_atom_vectors(tmp_path / "last"), load_atom_vectors(tmp_path / "all")
    assert every.shape == (len(last), 3 * 24) and list(every.index) == list(last.index)
    blocks = every.to_numpy().reshape(len(every), 3, 24)
    assert np.allclose(np.linalg.norm(blocks, axis=2), 1.0), "each layer's block has unit length"
    final = last.to_numpy() / np.linalg.norm(last.to_numpy(), axis=1, keepdims=True)
    assert np.allclose(blocks[:, -1], final, atol=1e-6), "the last block is the paper's vector, scaled"
    # the first block is the input embedding: it depends on the element only, not on its environments
    with torch.inference_mode():
        inputs = encoder.embed_atoms(torch.tensor([Element(e).Z for e in every.index])).double().numpy()
    assert np.allclose(blocks[:, 0], inputs / np.linalg.norm(inputs, axis=1, keepdims=True), atol=1e-5)
    card = (tmp_path / "all" / "README.md").read_text()
    assert "72-dim vector per element" in card and atom_vectors.LAYERS["all"] in card
    with pytest.raises(ValueError, match="layers must be one of"):
        atom_vectors.extract(weights, [STRUCTURES_FILE], layers="first", cache_dir=tmp_path / "cache", progress=False)


def test_the_card_describes_the_element_term_when_the_encoder_was_trained_with_it(tmp_path, encoder):
    from pretraining import card as cards

    options = {"element_weight": 1.0, "element_prototypes": "inputs", "element_temperature": 0.1}
    encoder_card = f"# encoder\n## Training data\n- fixtures\n## Training procedure\n- options: `{json.dumps(options)}`\n"
    weights = save_encoder(encoder, tmp_path / "encoder", card=encoder_card)
    out = tmp_path / "vectors"
    atom_vectors.main(["--weights", str(weights), "--data", str(STRUCTURES_FILE), "--out", str(out),
                       "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    card = (out / "README.md").read_text()
    assert "Barlow Twins, plus this project's element term" in card
    assert cards.element_term_note(options) in card


def test_a_megnet_encoder_is_refused(tmp_path):
    from matssl_featurizers.encoders import MEGNetEncoder

    weights = save_encoder(MEGNetEncoder(width=8, hidden=8, n_blocks=1), tmp_path / "megnet")
    with pytest.raises(ValueError, match="CGCNN"):
        atom_vectors.extract(weights, [STRUCTURES_FILE], cache_dir=tmp_path / "cache", progress=False)


def test_excluded_ids_are_left_out_of_the_averages(tmp_path, encoder):
    from pretraining.data import iter_records

    weights = save_encoder(encoder, tmp_path / "encoder")
    ids = [rid for rid, _, _ in iter_records(STRUCTURES_FILE)]
    (tmp_path / "exclude.txt").write_text("\n".join(ids[:100]))
    kwargs = dict(cache_dir=tmp_path / "cache", progress=False)
    everything = atom_vectors.extract(weights, [STRUCTURES_FILE], **kwargs)
    rest = atom_vectors.extract(weights, [STRUCTURES_FILE], exclude=[tmp_path / "exclude.txt"], **kwargs)
    assert (everything.attrs["n_structures"], rest.attrs["n_structures"]) == (len(ids), len(ids) - 100)
    assert rest.attrs["count"].sum() < everything.attrs["count"].sum()
