from pretraining import card


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
