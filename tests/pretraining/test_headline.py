import pandas as pd
import pytest

from pretraining import headline
from pretraining.tasks import Task


def _records(rows):
    """Per-fold records as ``pretraining.report.load_results`` gives them: (task, target, featurizer, [MAE per fold])."""
    return pd.DataFrame([{"task": t, "target": g, "row": r, "fold": i, "mae": m}
                         for t, g, r, maes in rows for i, m in enumerate(maes)])


def test_a_model_must_beat_every_seed_and_its_input_statistics(monkeypatch):
    monkeypatch.setattr(headline, "controls_of", lambda models: {"m": ("random:m", "inputs:m")})
    records = _records([
        # clear win over all controls
        ("mp_cgcnn", "band_gap", "m", [1.0, 1.0, 1.0]), ("mp_cgcnn", "band_gap", "random:m@0", [2.0, 2.1, 1.9]),
        ("mp_cgcnn", "band_gap", "random:m@1", [2.0, 2.0, 2.0]), ("mp_cgcnn", "band_gap", "inputs:m", [1.5, 1.5, 1.5]),
        # lower than all, but one seed is within a fold std
        ("carbon24", "energy_per_atom", "m", [1.0, 1.2, 0.8]), ("carbon24", "energy_per_atom", "random:m@0", [1.1, 1.1, 1.1]),
        ("carbon24", "energy_per_atom", "random:m@1", [3.0, 3.0, 3.0]), ("carbon24", "energy_per_atom", "inputs:m", [3.0, 3.0, 3.0]),
        # one seed is better: no win
        ("jarvis_dft3d", "optb88vdw_bandgap", "m", [1.0, 1.0, 1.0]), ("jarvis_dft3d", "optb88vdw_bandgap", "random:m@0", [0.9, 0.9, 0.9]),
        ("jarvis_dft3d", "optb88vdw_bandgap", "random:m@1", [2.0, 2.0, 2.0]), ("jarvis_dft3d", "optb88vdw_bandgap", "inputs:m", [2.0, 2.0, 2.0]),
        # not one of the seven shared targets: not counted
        ("jarvis_dft3d", "epsx", "m", [1.0, 1.0]), ("jarvis_dft3d", "epsx", "random:m@0", [9.0, 9.0]),
        ("jarvis_dft3d", "epsx", "random:m@1", [9.0, 9.0]), ("jarvis_dft3d", "epsx", "inputs:m", [9.0, 9.0]),
    ])
    line = headline.model_verdicts(records, ["m"], [0, 1]).splitlines()[-1]
    assert "| 2 of 3: carbon24 energy_per_atom, mp_cgcnn band_gap | 1 of 3: mp_cgcnn band_gap |" in line


def test_a_card_section_has_the_model_its_controls_and_its_verdict(monkeypatch):
    monkeypatch.setattr(headline, "controls_of", lambda models: {"m": ("random:m", "inputs:m")})
    records = _records([("carbon24", "energy_per_atom", "m", [1.0, 1.0]), ("carbon24", "energy_per_atom", "random:m@0", [3.0, 3.0]),
                        ("carbon24", "energy_per_atom", "inputs:m", [0.5, 0.7]), ("carbon24", "energy_per_atom", "ElementProperty", [2.0, 2.2])])
    text = headline.card_evaluation(records, "m", ("random:m", "inputs:m"), [0], "heading")
    assert "| carbon24 | energy_per_atom | 1 ± 0 | 3 ± 0 | 0.6 ± 0.14 | 2.1 ± 0.14 |" in text
    assert text.endswith("lower MAE on 0 of 1; by more than one fold standard deviation on 0 of 1.")


def test_preset_verdicts_compare_against_element_property_on_structure_sensitive_targets(monkeypatch):
    from matssl_featurizers import hybrid

    monkeypatch.setattr(hybrid, "PRESETS", {"p": ("m", "cgcnn92", 8)})
    records = _records([
        ("carbon24", "energy_per_atom", "preset:p+ElementProperty", [0.1, 0.1]),
        ("carbon24", "energy_per_atom", "ElementProperty", [0.5, 0.6]),
        ("mp_cgcnn", "band_gap", "preset:p+ElementProperty", [0.1, 0.1]),
        ("mp_cgcnn", "band_gap", "ElementProperty", [0.5, 0.6]),
    ])
    lines = headline.preset_verdicts(records).splitlines()
    assert len(lines) == 3 and "carbon24 energy_per_atom" in lines[2] and lines[2].endswith("| yes | yes | 2 of 2 (-0.45 ± 0.071) |")


def test_the_paired_column_counts_folds_where_the_preset_is_lower_whatever_the_means_say():
    # fold 2 is hard for both; the preset is lower on folds 0 and 1, higher on fold 2
    records = _records([("jarvis_dft3d", "epsx", "preset:p+ElementProperty", [10.0, 20.0, 41.0]),
                        ("jarvis_dft3d", "epsx", "ElementProperty", [11.0, 22.0, 40.0]),
                        ("jarvis_dft3d", "epsx", "other", [0.0, 0.0, 0.0])])
    cell = headline.paired_difference(records, ("jarvis_dft3d", "epsx"), "preset:p+ElementProperty", "ElementProperty")
    assert cell == "2 of 3 (-0.667 ± 1.5)"


def test_the_readme_block_is_replaced_between_its_markers():
    text = f"intro\n{headline.START}\nold table\n{headline.END}\nrest\n"
    assert headline.replace_block(text, "new") == f"intro\n{headline.START}\nnew\n{headline.END}\nrest\n"
    with pytest.raises(SystemExit, match="no <!-- headline:start -->"):
        headline.replace_block("no markers", "new")


def test_featurizers_cover_models_controls_and_presets():
    names = headline.featurizer_names(headline.structure_models())
    assert "ElementProperty" in names and any(n.startswith("random:") for n in names)
    assert any(n.startswith("inputs:") for n in names) and any(n.endswith("+ElementProperty") for n in names)
    # a preset with the parameter-free anisotropy block brings that block + ElementProperty as its geometry control
    assert "preset:hybrid-anisotropy+ElementProperty" in names and names[-1] == "ShellAnisotropy+ElementProperty"


def _payload(folds, features):
    """A results.json of ``pretraining.evaluate``: featurizer -> [MAE per fold]."""
    return {"command": "python -m pretraining.evaluate --data ../shared/data/carbon24.jsonl.gz --target energy_per_atom",
            "test_ids": folds, "features": {n: {"n_features": 4, "effective_rank": 2.0} for n in features},
            "results": [{"target": "energy_per_atom", "featurizer": n, "train_size": "all", "n_train": 8, "n_test": 2,
                         "fold": i, "mae": m} for n, maes in features.items() for i, m in enumerate(maes)]}


def test_only_replaces_the_rows_evaluated_again_and_keeps_the_others(tmp_path):
    import json

    out, update = tmp_path / "out", tmp_path / "update"
    out.mkdir(), update.mkdir()
    folds = [["a", "b"], ["c", "d"]]
    (out / "results.json").write_text(json.dumps(_payload(folds, {"m": [3.0, 3.0], "random:m@0": [2.0, 2.0]})))
    (out / "results.md").write_text("Random forest on 4 structures.\n\nCommand: `old`\n\n| old table |\n")
    new = _payload(folds, {"m": [1.0, 1.5]})
    new["command"] += f" --featurizers m --out {update}"
    (update / "results.json").write_text(json.dumps(new))
    headline.merge_rows(out, update)
    merged = json.loads((out / "results.json").read_text())
    maes = {(r["featurizer"], r["fold"]): r["mae"] for r in merged["results"]}
    assert maes == {("m", 0): 1.0, ("m", 1): 1.5, ("random:m@0", 0): 2.0, ("random:m@0", 1): 2.0}
    assert [r["featurizer"] for r in merged["results"]] == ["m", "m", "random:m@0", "random:m@0"]  # rows keep their place
    command = new["command"].replace(str(update), str(out))
    assert merged["updated"] == [{"command": command, "featurizers": ["m"], "times": 1}]
    text = (out / "results.md").read_text()
    assert text.startswith("Random forest on 4 structures.\n\nCommand: `python -m pretraining.evaluate")
    assert "| m | 4 (2.0) | 1.2500 ± 0.3536 |" in text and "old table" not in text

    new["results"][0]["mae"] = 0.5  # the same command run again (e.g. the model re-released): one line, counted
    (update / "results.json").write_text(json.dumps(new))
    headline.merge_rows(out, update)
    merged = json.loads((out / "results.json").read_text())
    assert merged["updated"] == [{"command": command, "featurizers": ["m"], "times": 2}]
    text = (out / "results.md").read_text()
    assert text.count("evaluated again") == 1 and "(2 times; the latest rows are shown)" in text
    assert "| m | 4 (2.0) | 1.0000 ± 0.7071 |" in text

    new["test_ids"] = [["a", "c"], ["b", "d"]]
    (update / "results.json").write_text(json.dumps(new))
    with pytest.raises(SystemExit, match="folds differ"):
        headline.merge_rows(out, update)


def test_only_a_model_brings_every_row_that_reads_its_weights():
    assert headline.rows_reading("cdssl") == ["cdssl", "inputs:cdssl"]  # its input table is its learned embedding
    assert headline.rows_reading("crystalclr") == ["crystalclr"]  # CGCNN's fixed 92 features: inputs: do not change
    assert headline.rows_reading("masked-denoising") == ["masked-denoising", "preset:hybrid", "preset:hybrid+ElementProperty",
                                                         "preset:hybrid-anisotropy", "preset:hybrid-anisotropy+ElementProperty"]


def test_reuse_evaluates_only_the_tasks_without_results(tmp_path, monkeypatch):
    evaluated, rendered = [], []
    monkeypatch.setattr(headline, "TASKS", {"kept": Task("a.jsonl.gz", ("t",)), "added": Task("b.jsonl.gz", ("u",))})
    monkeypatch.setattr(headline.evaluate, "main", lambda argv: evaluated.append(argv[argv.index("--out") + 1]))
    monkeypatch.setattr(headline, "load_runs", lambda directories: rendered.extend(directories) or pd.DataFrame())
    monkeypatch.setattr(headline, "render", lambda *args: "table")
    (tmp_path / "test" / "kept").mkdir(parents=True)
    (tmp_path / "test" / "kept" / "results.json").write_text("{}")
    assert headline.main(["--reuse", "--out", str(tmp_path), "--tasks", "kept,added"]) == 0
    assert evaluated == [str(tmp_path / "test" / "added")]
    assert rendered == [tmp_path / "test" / "kept", tmp_path / "test" / "added"]
    assert (tmp_path / "results.md").read_text() == "table"
