import pandas as pd
import pytest

from pretraining.evaluation import headline
from pretraining.evaluation.featurizer_names import bundled_structure_models
from pretraining.evaluation.tasks import Task


def _records(rows):
    """Per-fold records as ``pretraining.evaluation.results.load_results`` gives them: (task, target, featurizer, [MAE per fold])."""
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
    # a preset with magpie is the columns of another preset + ElementProperty: no verdict of its own
    monkeypatch.setattr(headline, "PRESETS", {"p": ("m", "cgcnn92", 8, False, False), "p-magpie": ("m", "cgcnn92", 8, False, True)})
    assert headline.headline_presets() == ["p"]
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
    names = headline.headline_rows(bundled_structure_models())
    assert "ElementProperty" in names and any(n.startswith("random:") for n in names)
    assert any(n.startswith("inputs:") for n in names) and any(n.endswith("+ElementProperty") for n in names)
    # a preset with the parameter-free anisotropy block brings that block + ElementProperty as its geometry control
    assert "preset:hybrid-anisotropy+ElementProperty" in names and names[-1] == "ShellAnisotropy+ElementProperty"
    # hybrid-anisotropy-magpie is that row already (the same columns in order): not evaluated twice
    assert not any("magpie" in n for n in names)
    assert headline.headline_presets() == ["hybrid", "hybrid-anisotropy"]


def _payload(folds, features):
    """A results.json of ``pretraining.evaluation.evaluate``: featurizer -> [MAE per fold]."""
    return {"command": "python -m pretraining.evaluation.evaluate --data ../shared/data/carbon24.jsonl.gz --target energy_per_atom",
            "data": ["../shared/data/carbon24.jsonl.gz"], "settings": {"target": "energy_per_atom", "folds": 2},
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
    assert text.startswith("Random forest on 4 structures.\n\nCommand: `python -m pretraining.evaluation.evaluate")
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
    monkeypatch.setattr(headline, "run_task", lambda options: evaluated.append(options))
    monkeypatch.setattr(headline, "load_runs", lambda directories: rendered.extend(directories) or pd.DataFrame())
    monkeypatch.setattr(headline, "render", lambda *args: "table")
    (tmp_path / "test" / "kept").mkdir(parents=True)
    (tmp_path / "test" / "kept" / "results.json").write_text("{}")
    data = tmp_path / "data"
    assert headline.main(["--reuse", "--data-dir", str(data), "--out", str(tmp_path), "--tasks", "kept,added"]) == 0
    assert [options[options.index("--out") + 1] for options in evaluated] == [str(tmp_path / "test" / "added")]
    options = evaluated[0]
    assert options[options.index("--data") + 1] == str(data / "b.jsonl.gz") and options[options.index("--target") + 1] == "u"
    assert options[options.index("--split") + 1] == "test"
    assert options[options.index("--featurizers") + 1] == ",".join(headline.headline_rows(bundled_structure_models()))
    assert rendered == [tmp_path / "test" / "kept", tmp_path / "test" / "added"]
    assert (tmp_path / "results.md").read_text() == "table"


def test_the_data_folder_must_be_given(tmp_path, capsys):
    with pytest.raises(SystemExit):
        headline.main(["--out", str(tmp_path)])
    assert "the following arguments are required: --data-dir" in capsys.readouterr().err


_COMPACT = [("carbon24", "energy_per_atom", "ElementProperty", [0.5, 0.6]),
            ("carbon24", "energy_per_atom", "preset:hybrid-anisotropy+ElementProperty", [0.2, 0.3]),
            ("carbon24", "energy_per_atom", "preset:hybrid+ElementProperty", [0.3, 0.3]),
            ("carbon24", "energy_per_atom", "masked-denoising", [0.4, 0.4]),
            ("carbon24", "energy_per_atom", "random:masked-denoising@0", [0.1, 0.1]),  # not a column of the compact table
            ("mp_cgcnn", "band_gap", "ElementProperty", [0.1, 0.1]),
            ("mp_cgcnn", "band_gap", "masked-denoising", [0.3, 0.5])]


def test_the_compact_table_has_magpie_the_presets_and_the_default_model_per_target():
    lines = headline.compact_table(_records(_COMPACT), "python -m pretraining.evaluation.headline --data-dir d").splitlines()
    assert "made by `python -m pretraining.evaluation.headline --data-dir d`" in lines[0]
    assert "[docs/results.md](docs/results.md)" in lines[0]
    assert lines[2] == "| target | magpie | `hybrid-anisotropy-magpie` | `hybrid` + magpie | `masked-denoising` |"
    assert lines[4] == "| carbon24 `energy_per_atom` | 0.55 ± 0.071 | **0.25 ± 0.071** | 0.3 ± 0 | 0.4 ± 0 |"
    assert lines[5] == "| mp_cgcnn `band_gap` | **0.1 ± 0** | 0.4 ± 0.14 |"


def test_results_gets_the_full_text_and_the_readme_the_compact_table(tmp_path, monkeypatch):
    monkeypatch.setattr(headline, "TASKS", {"kept": Task("a.jsonl.gz", ("t",))})
    monkeypatch.setattr(headline, "run_task", lambda options: pytest.fail("--reuse evaluated a task with results"))
    monkeypatch.setattr(headline, "load_runs", lambda directories: _records(_COMPACT))
    monkeypatch.setattr(headline, "render", lambda *args: "full table and verdicts")
    (tmp_path / "test" / "kept").mkdir(parents=True)
    (tmp_path / "test" / "kept" / "results.json").write_text("{}")
    (tmp_path / "docs").mkdir()
    results, readme = tmp_path / "docs" / "results.md", tmp_path / "README.md"
    for path in (results, readme):
        path.write_text(f"intro\n{headline.START}\nold\n{headline.END}\nrest\n")
    argv = ["--data-dir", str(tmp_path / "data"), "--out", str(tmp_path), "--tasks", "kept"]
    assert headline.main([*argv, "--reuse", "--results", str(results), "--readme", str(readme)]) == 0
    assert results.read_text() == f"intro\n{headline.START}\nfull table and verdicts\n{headline.END}\nrest\n"
    command = headline.command_line("pretraining.evaluation.headline", [*argv, "--results", str(results), "--readme", str(readme)])
    compact = headline.compact_table(_records(_COMPACT), command)
    assert readme.read_text() == f"intro\n{headline.START}\n{compact}\n{headline.END}\nrest\n"
    assert "--reuse" not in compact, "the command that evaluates everything"
