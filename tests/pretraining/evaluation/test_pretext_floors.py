import torch

from matssl_featurizers.graphs import GaussianDistance, collate, structure_to_graph
from pretraining.losses import composition_similarity_loss
from pretraining.methods import element_presence
from pretraining.evaluation.pretext_floors import composition_baseline, composition_similarity_floor, denoising_baselines, element_shares


def _batches(structures, size=16):
    graphs = [structure_to_graph(s) for s in structures[:48]]
    return [collate(graphs[i:i + size]) for i in range(0, len(graphs), size)]


def test_copying_is_exact_without_noise_and_worse_with_it(structures):
    batches, distance = _batches(structures), GaussianDistance(0.0, 8.0, 0.2)
    torch.manual_seed(0)
    assert denoising_baselines(batches, 0.0, distance)["copy_noisy_mse"] == 0.0
    noisy = denoising_baselines(batches, 0.1, distance)
    assert 0 < noisy["copy_noisy_mse"] and 0 < noisy["predict_mean_mse"]


def test_no_embedding_goes_below_the_composition_similarity_floor(structures):
    batches = _batches(structures)
    floor = composition_similarity_floor(batches)
    torch.manual_seed(0)
    losses = []
    for batch in batches:
        z = torch.randn(batch.num_graphs, 8)
        losses.append(composition_similarity_loss(z, z + 0.01 * torch.randn_like(z), element_presence(batch), 0.05))
    assert floor <= float(torch.stack(losses).mean()) + 1e-6


def test_composition_baseline_is_the_spread_of_the_element_statistics_over_the_crystals(structures):
    import numpy as np

    from matssl_featurizers.elements import element_table

    table = element_table("cgcnn92").numpy()
    targets = []
    for structure in structures[:48]:
        rows = table[[site.specie.Z for site in structure]]
        targets.append(np.concatenate([rows.mean(0), rows.std(0)]))
    by_hand = np.array(targets).var(0).sum()
    assert by_hand > 0
    assert abs(composition_baseline(_batches(structures)) - by_hand) < 1e-5 * by_hand
    one_crystal = [collate([structure_to_graph(structures[0])] * 4)]
    assert composition_baseline(one_crystal) < 1e-10, "identical crystals: the constant prediction is exact"


def test_element_shares_count_structures_not_sites(structures):
    shares = element_shares(_batches(structures), top=3)
    assert len(shares) == 3
    for symbol, share in shares.items():
        by_hand = sum(any(el.symbol == symbol for el in s.composition.elements) for s in structures[:48]) / 48
        assert abs(share - by_hand) < 1e-12, symbol


def test_the_command_takes_the_runs_exclusions_to_find_its_validation_split(tmp_path, monkeypatch, capsys):
    import json

    from pretraining.evaluation import pretext_floors
    from pretraining.data import iter_records
    from tests.conftest import STRUCTURES_FILE

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ids = [rid for rid, _, _ in iter_records(STRUCTURES_FILE)]
    (tmp_path / "exclude.txt").write_text("\n".join(ids[:50]))
    reports = []
    for extra in ([], ["--exclude", str(tmp_path / "exclude.txt")]):
        assert pretext_floors.main(["--data", str(STRUCTURES_FILE), "--batch-size", "4", *extra]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert [r["n_validation"] for r in reports] == [round(0.05 * len(ids)), round(0.05 * (len(ids) - 50))]
