from matssl_featurizers.encoders import PretrainedEncoder
from pretraining import card
from pretraining.methods import ELEMENT_PROTOTYPES


def test_a_subsection_is_replaced_in_place_or_appended(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(f"# model\n\ntext\n\n{card.EVALUATION_HEADING}\n{card.EVALUATION_PLACEHOLDER}\n")
    card.set_evaluation(path, "table A", section="Random forest")
    card.set_evaluation(path, "table B", section="Fine-tuning")
    card.set_evaluation(path, "table A2", section="Random forest")
    text = path.read_text()
    assert text.startswith("# model\n\ntext\n")
    assert card.evaluation_of(path) == "### Random forest\ntable A2\n\n### Fine-tuning\ntable B"
    assert card.EVALUATION_PLACEHOLDER not in text
    card.set_evaluation(path, "everything")
    assert card.evaluation_of(path) == "everything"


def _crysatom_card(options, files=(("carbon24.jsonl.gz", 10),)):
    history = [{"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "lr": 1e-3, "seconds": 10.0}]
    data = {"files": [list(f) for f in files], "n_structures": sum(k for _, k in files), "n_skipped": 0, "n_train": 9,
            "n_val": 1}
    return card.render(name="crysatom", method="crysatom", citation="", commands=["python -m pretraining.run"], data=data,
                       options=options, history=history, exported_epoch=1, encoder=_ENCODER)


_ENCODER = PretrainedEncoder.from_config({"architecture": "cgcnn", "atom_fea_len": 8, "n_conv": 1, "readout": "head",
                                          "out_dim": 0})


def test_a_card_notes_the_element_term_only_when_the_run_switched_it_on_and_records_its_options():
    options = {"element_weight": 0.5, "element_prototypes": "inputs", "element_temperature": 0.1, "lambd": 0.0051}
    paper = _crysatom_card({**options, "element_weight": 0.0})
    added = _crysatom_card(options)
    assert "Element term" not in paper
    assert card.element_term_note(options) in added and "`--element-weight 0.5`" in added
    assert ELEMENT_PROTOTYPES["inputs"] in added and ELEMENT_PROTOTYPES["learned"] not in added
    assert card.PAPER_NOTES["crysatom"][0] in paper and card.PAPER_NOTES["crysatom"][0] in added
    assert card.card_options(added) == options
    assert card.card_options("# a card without options") == {}
    assert card.vector_sentence(_ENCODER) in added and "8-dim vector" in added
    assert card.architecture_line(_ENCODER.config) in added and '"architecture": "cgcnn"' in added


def test_the_data_section_names_each_file_with_its_count_and_the_mp_attribution_only_for_mp_data():
    carbon = _crysatom_card({})
    assert "- `carbon24` (10): 10 structures used" in carbon and "Materials Project" not in carbon
    both = _crysatom_card({}, files=[("mp_cgcnn.jsonl.gz", 6), ("carbon24.jsonl.gz", 4)])
    assert "- `mp_cgcnn` (6), `carbon24` (4): 10 structures used" in both
    assert "Materials Project (CC BY 4.0)" in both and "which carries the Materials Project's attribution" in both


def test_an_empty_or_missing_evaluation_section_reads_as_the_placeholder(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(f"# model\n\n{card.EVALUATION_HEADING}\n\n## Differences from the paper\n- none\n")
    assert card.evaluation_of(path) == card.EVALUATION_PLACEHOLDER
    path.write_text("# model\n\ntext\n")
    assert card.evaluation_of(path) == card.EVALUATION_PLACEHOLDER
    path.write_text(f"# model\n\n{card.EVALUATION_HEADING}\nMAE 0.2\n\n## Differences from the paper\n- none\n")
    assert card.evaluation_of(path) == "MAE 0.2"


def test_command_words_with_an_apostrophe_are_double_quoted_and_every_word_reads_back():
    import shlex

    words = ["--card-section", "Fine-tuned on the headline's test folds: mp_cgcnn", "it's $HOME", "a b", "plain"]
    line = card.command_line("pretraining.evaluation.finetune", words)
    assert '"Fine-tuned on the headline\'s test folds: mp_cgcnn"' in line  # not '...headline'"'"'s...'
    assert shlex.split(line)[3:] == words  # "$HOME" inside stays literal: single-quoted
    assert card.portable(line) == line
