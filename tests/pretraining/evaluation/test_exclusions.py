import shutil

from pretraining.evaluation import exclusions, tasks
from tests.conftest import STRUCTURES_FILE


def test_the_ids_of_every_tasks_test_and_dev_rows_are_written_one_per_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tasks, "SPLIT_SIZE", 20)
    monkeypatch.setattr(tasks, "TASKS", {"gaps": tasks.Task("fixtures.jsonl.gz", ("band_gap",)),
                                         "energies": tasks.Task("fixtures.jsonl.gz", ("formation_energy_per_atom",))})
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(STRUCTURES_FILE, data / "fixtures.jsonl.gz")
    out = tmp_path / "splits" / "evaluation_ids.txt"
    assert exclusions.main(["--data-dir", str(data), "--out", str(out)]) == 0
    written = out.read_text().splitlines()
    expected = set()
    for target in ("band_gap", "formation_energy_per_atom"):
        ids = [r["id"] for r in tasks.labelled_records([data / "fixtures.jsonl.gz"], (target,))]
        for split in tasks.SPLITS:
            expected.update(ids[i] for i in tasks.split_positions(ids, split))
    assert written == sorted(expected) and len(written) >= 40
    assert f"wrote {len(written)} ids to {out}" in capsys.readouterr().out
