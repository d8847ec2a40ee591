import re

from pretraining.evaluation import gpu_check
from tests.conftest import STRUCTURES_FILE


def test_the_gpu_check_runs_its_steps_on_any_device_and_says_whether_it_passed(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("mp_cgcnn.jsonl.gz", "castelli_perovskites.jsonl.gz"):  # the fixtures hold rows of both
        (data / name).symlink_to(STRUCTURES_FILE)
    status = gpu_check.main(["--data-dir", str(data), "--device", "cpu", "--structures", "120", "--epochs", "2",
                             "--fine-tune-rows", "20", "--fine-tune-epochs", "2", "--out", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert len(re.findall(r"^pretraining \((device|device, bf16|cpu)\): \d+ structures/s, train loss ", out, re.M)) == 3
    assert re.search(r"^pretraining speed-up of cpu over the CPU: [\d.]+x \(bf16: [\d.]+x\)$", out, re.M)
    assert len(re.findall(r"^fine-tuning castelli e_form, fold 1 \(20 training rows\) on cpu: [\d.]+ min", out, re.M)) == 2
    assert out.rstrip().endswith("GPU check: passed" if status == 0 else "GPU check: FAILED")
