import json

from pretraining.evaluation import finetune_benchmark, tasks
from tests.conftest import STRUCTURES_FILE


def test_the_benchmark_compares_the_estimator_with_forests_on_identical_folds_and_resumes(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "castelli_perovskites.jsonl.gz").symlink_to(STRUCTURES_FILE)  # 30 castelli rows among the fixtures
    monkeypatch.setattr(finetune_benchmark, "SIZES", "10,all")
    results, readme = tmp_path / "results.md", tmp_path / "README.md"
    for path in (results, readme):
        path.write_text(f"before\n{finetune_benchmark.START}\nOLD TEXT\n{finetune_benchmark.END}\nafter\n")
    args = ["--data-dir", str(data), "--tasks", "castelli_perovskites", "--no-large", "--epochs", "1", "--threads", "1",
            "--out", str(tmp_path / "out"), "--results", str(results), "--readme", str(readme), "--reuse"]
    assert finetune_benchmark.main(args) == 0
    base = tmp_path / "out" / "test" / "castelli_perovskites"
    tuned, forests = (json.loads((base / part / "results.json").read_text()) for part in ("finetune", "forests"))
    assert tuned["test_ids"] == forests["test_ids"], "identical folds"
    assert {r["model"] for r in tuned["results"]} == {"masked-denoising", *(f"random:masked-denoising@{s}" for s in range(3))}
    assert {r["featurizer"] for r in forests["results"]} == {"ElementProperty", *finetune_benchmark.PRESETS}
    text = results.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "OLD TEXT" not in text
    assert "| castelli_perovskites `e_form`, all | " in text and "against every random start" in text
    assert "| castelli_perovskites `e_form` | " in readme.read_text()
    stamp = (base / "finetune" / "results.json").stat().st_mtime
    assert finetune_benchmark.main(args) == 0
    assert (base / "finetune" / "results.json").stat().st_mtime == stamp, "--reuse keeps what is there"
    assert tasks.TASKS["castelli_perovskites"].shared
