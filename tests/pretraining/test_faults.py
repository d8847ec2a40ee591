"""Faults around a pretraining run: unreadable input rows, and the integrity of what it exports."""

import gzip
import json

import pytest

from matssl_featurizers.bundled import sha256
from matssl_featurizers.encoders import PretrainedEncoder
from pretraining import run


@pytest.fixture(scope="module")
def run_with_bad_rows(tmp_path_factory, rows):
    """One epoch on 40 readable structures (2 for validation) and 3 unreadable entries (bad JSON, a broken CIF, no structure key)."""
    tmp = tmp_path_factory.mktemp("faults")
    data = tmp / "mixed.jsonl.gz"
    with gzip.open(data, "wt") as handle:
        for k, row in enumerate(rows[:40]):
            handle.write(json.dumps({"id": row["id"], "cif": row["cif"]}) + "\n")
            if k == 3:
                handle.write("{not json\n")
            if k == 7:
                handle.write(json.dumps({"id": "broken-cif", "cif": "data_x\n_cell_length_a 3\n"}) + "\n")
        handle.write(json.dumps({"id": "no-structure"}) + "\n")
    out = tmp / "ct"
    with pytest.warns(UserWarning, match="skipped 3"):
        code = run.main(["--method", "crystal-twins", "--data", str(data), "--batch-size", "8", "--lr", "1e-3",
                         "--epochs", "1", "--out", str(out), "--cache-dir", str(tmp / "cache"), "--no-progress"])
    assert code == 0
    return out


def test_skipped_rows_are_counted_in_the_model_card(run_with_bad_rows):
    card = (run_with_bad_rows / "README.md").read_text()
    assert "40 structures used (3 unreadable\n  skipped)" in card


def test_an_export_carries_checksums_that_the_loader_verifies(run_with_bad_rows, tmp_path):
    import shutil

    manifest = json.loads((run_with_bad_rows / "checksums.json").read_text())
    assert manifest == {name: sha256(run_with_bad_rows / name)
                        for name in ("config.json", "metadata.json", "model.safetensors")}
    PretrainedEncoder.from_pretrained(run_with_bad_rows)
    for name in ("config.json", "metadata.json"):
        copy = shutil.copytree(run_with_bad_rows, tmp_path / f"copy-{name}", ignore=shutil.ignore_patterns("training"))
        (copy / name).write_text((copy / name).read_text() + "\n")
        with pytest.raises(OSError, match=rf"{name.replace('.', '[.]')} does not match the sha256 recorded in checksums\.json"):
            PretrainedEncoder.from_pretrained(copy)


def test_push_to_hub_uploads_the_checksums(run_with_bad_rows, monkeypatch):
    import huggingface_hub

    uploaded = []

    class FakeApi:
        def create_repo(self, repo_id, exist_ok):
            pass

        def upload_folder(self, folder_path, repo_id, allow_patterns):
            uploaded.extend(allow_patterns)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    run.push_to_hub(run_with_bad_rows, "someone/ct")
    assert {"config.json", "metadata.json", "model.safetensors", "README.md", "checksums.json"} <= set(uploaded)
