import json
from pathlib import Path

import numpy as np
import pytest

import matssl_featurizers
from matssl_featurizers import SSLStructureFeaturizer, bundled
from matssl_featurizers.encoders import PretrainedEncoder
from pretraining import data, run, training_state
from tests.conftest import STRUCTURES_FILE

# the run folder in checkpoints/ behind each bundled model (models/index.json) and bundled atom-vector table
# (models/atom_vectors.json: the crysatom vectors are read out of the encoder in checkpoints/crysatom, see their card)
BUNDLED_RUNS = {"masked-denoising": "masked-denoising", "crystal-twins": "crystal-twins", "crystalclr": "crystalclr",
                "cdssl": "cdssl", "crysatom": "crysatom"}


def _train(out, cache, *extra):
    return run.main(["--method", "crystal-twins", "--data", str(STRUCTURES_FILE), "--batch-size", "32", "--lr", "1e-3",
                     "--out", str(out), "--cache-dir", str(cache), "--no-progress", *extra])


def assert_same_tensors(actual: dict, expected: dict) -> None:
    """Every tensor of ``actual`` equals ``expected``'s of the same name (NaN rows of the element table included)."""
    for key in actual:
        assert np.array_equal(actual[key].numpy(), expected[key].numpy(), equal_nan=True), key


def assert_same_state(actual: dict, expected: dict) -> None:
    """Two training states (:func:`pretraining.training_state.load`) hold the same tensors and the same rest."""
    assert actual["method"].keys() == expected["method"].keys()
    assert_same_tensors(actual["method"], expected["method"])
    assert actual["optimizer"]["state"].keys() == expected["optimizer"]["state"].keys()
    for index, entries in actual["optimizer"]["state"].items():
        assert entries.keys() == expected["optimizer"]["state"][index].keys()
        assert_same_tensors(entries, expected["optimizer"]["state"][index])
    assert actual["optimizer"]["param_groups"] == expected["optimizer"]["param_groups"]
    assert actual["best"]["encoder"].keys() == expected["best"]["encoder"].keys()
    assert_same_tensors(actual["best"]["encoder"], expected["best"]["encoder"])
    for key in ("epoch", "step", "history", "commands"):
        assert actual[key] == expected[key], key
    assert (actual["best"]["epoch"], actual["best"]["val_loss"]) == (expected["best"]["epoch"], expected["best"]["val_loss"])


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail on any attempt to unpickle (``torch.load`` or ``pickle``)."""
    import pickle

    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was unpickled")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ct"
    assert _train(out, out.parent / "cache", "--epochs", "1") == 0
    return out


def test_one_epoch_exports_weights_the_featurizer_loads(one_epoch, structures):
    assert {p.name for p in one_epoch.iterdir()} >= {"config.json", "metadata.json", "model.safetensors", "README.md",
                                                     "checksums.json", "training"}
    metrics = [json.loads(line) for line in (one_epoch / "training" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1]
    assert np.isfinite(metrics[0]["train_loss"]) and np.isfinite(metrics[0]["val_loss"])
    card = (one_epoch / "README.md").read_text()
    assert "python -m pretraining.run --method crystal-twins" in card and "142 for training" in card

    featurizer = SSLStructureFeaturizer(weights=str(one_epoch))
    features = np.array(featurizer.featurize_many(structures[:8], pbar=False))
    assert features.shape == (8, 809) and np.isfinite(features).all()  # 4 layers x mean/max/std x 64 + 41
    encoder = PretrainedEncoder.from_pretrained(one_epoch)
    labels = featurizer.feature_labels()
    assert labels[0] == f"crystal-twins-{encoder.fingerprint()[:8]} input mean 0"
    assert labels == [f"crystal-twins-{encoder.fingerprint()[:8]} {label}" for label in encoder.feature_labels()]
    assert labels[-1] == f"crystal-twins-{encoder.fingerprint()[:8]} distance histogram mean 8.0 A"
    assert SSLStructureFeaturizer(weights=str(one_epoch), label_prefix="my-ct").feature_labels()[0] == "my-ct input mean 0"
    assert any("Crystal twins" in c for c in featurizer.citations())
    # what the run records besides the weights (metadata.json)
    assert encoder.info.method == "crystal-twins" and encoder.graph_settings == {"cutoff": 8.0, "max_neighbors": 12}
    provenance = encoder.info.provenance
    assert provenance["data"] == {STRUCTURES_FILE.name: 150} and provenance["n_structures"] == 150
    assert (provenance["epoch"], provenance["epochs"]) == (1, 1)
    assert len(provenance["commands"]) == 1 and provenance["commands"][0].startswith("python -m pretraining.run --method crystal-twins")
    assert provenance["library"] == f"matssl-featurizers {matssl_featurizers.__version__}"
    assert json.loads((one_epoch / "config.json").read_text()) == encoder.config, "config.json: the constructor arguments only"


def test_existing_run_needs_resume(one_epoch):
    with pytest.raises(SystemExit, match="state.json exists: pass --resume"):
        _train(one_epoch, one_epoch.parent / "cache", "--epochs", "1")


def test_the_training_state_round_trips_every_tensor_without_unpickling(one_epoch, tmp_path, no_unpickling):
    from safetensors.torch import load_file

    def tensor_file(directory):
        return json.loads((directory / "state.json").read_text())["tensors"]["file"]

    training = one_epoch / "training"
    assert sorted(p.name for p in training.iterdir()) == ["metrics.jsonl", tensor_file(training), "state.json"]
    state = training_state.load(training)
    assert state["epoch"] == 1 and state["best"]["epoch"] == 1 and state["commands"][0].startswith("python -m pretraining.run")
    assert all(entries["step"].item() == state["step"] for entries in state["optimizer"]["state"].values())
    assert_same_tensors(load_file(one_epoch / "model.safetensors"), state["best"]["encoder"])
    training_state.save(tmp_path, state)
    assert_same_state(training_state.load(tmp_path), state)

    first = tensor_file(tmp_path)
    state["step"], state["optimizer"]["state"][0]["step"] = 5, state["optimizer"]["state"][0]["step"] + 1
    training_state.save(tmp_path, state)  # new tensors: a new file, and the one the old state.json named is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == [tensor_file(tmp_path), "state.json"] and tensor_file(tmp_path) != first
    assert training_state.load(tmp_path)["step"] == 5


def test_a_pickled_checkpoint_of_an_earlier_version_is_refused_unread(tmp_path, no_unpickling):
    out = tmp_path / "old"
    (out / "training").mkdir(parents=True)
    (out / "training" / "checkpoint.pt").write_bytes(b"a pickle")
    for extra in ([], ["--resume"]):
        with pytest.raises(SystemExit, match=r"checkpoint\.pt is a pickled checkpoint of an earlier version, and pickled "
                                             "checkpoints are no longer read: start the run again with another --out"):
            _train(out, tmp_path / "cache", "--epochs", "1", *extra)
    assert not (tmp_path / "cache").exists(), "refused before reading data"


def test_the_repository_holds_no_pickle_and_only_the_runs_behind_bundled_models():
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(run.__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True) if shutil.which("git") else None
    if listed is not None and listed.returncode == 0:
        files = listed.stdout.splitlines()
    else:  # no git: the working tree's checkpoints/
        files = [p.relative_to(root).as_posix() for p in (root / "checkpoints").rglob("*") if p.is_file()]
    assert [f for f in files if f.endswith((".pt", ".pth", ".pkl"))] == []
    assert set(BUNDLED_RUNS) == set(bundled.bundled_models()) | set(bundled.bundled_atom_vectors())
    runs = {f.split("/")[1] for f in files if f.startswith("checkpoints/") and f.count("/") > 1}
    assert runs == set(BUNDLED_RUNS.values())
    for name in runs:
        assert training_state.exists(root / "checkpoints" / name / "training"), name


@pytest.fixture
def single_thread():
    """CPU kernels are bitwise reproducible only on one thread (two threads differ by ~1e-3 after an epoch)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_resume_ends_with_the_same_export_as_an_uninterrupted_run(tmp_path, one_epoch, single_thread, no_unpickling):
    from safetensors.torch import load_file

    straight = tmp_path / "straight"
    _train(straight, one_epoch.parent / "cache", "--epochs", "2")
    resumed = tmp_path / "resumed"
    _train(resumed, one_epoch.parent / "cache", "--epochs", "2", "--time-limit", "1e-9")  # stops after epoch 1
    assert len((resumed / "training" / "metrics.jsonl").read_text().splitlines()) == 1
    _train(resumed, one_epoch.parent / "cache", "--epochs", "2", "--resume")
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    assert_same_tensors(a, b)
    # the same parameters, Adam moments, learning rates, losses and best epoch; only timings and commands differ
    ends = [training_state.load(out / "training") for out in (straight, resumed)]
    for state in ends:
        state["history"] = [{k: v for k, v in r.items() if k not in ("seconds", "structures_per_second")} for r in state["history"]]
        state["commands"] = len(state["commands"])
    assert ends[1]["commands"] == 2
    ends[1]["commands"] = 1
    assert_same_state(*ends)
    assert len((resumed / "training" / "metrics.jsonl").read_text().splitlines()) == 2
    card = (resumed / "README.md").read_text()
    assert "--time-limit 1e-9`; then `" in card and "--epochs 2 --resume`" in card
    # resuming a finished run exports the same weights again
    _train(resumed, one_epoch.parent / "cache", "--epochs", "2", "--resume")
    assert load_file(resumed / "model.safetensors").keys() == a.keys()


def test_export_last_writes_the_last_epoch_and_a_finished_run_re_exports_either_choice(tmp_path, one_epoch):
    import shutil

    from safetensors.torch import load_file

    out = tmp_path / "ct"
    shutil.copytree(one_epoch, out)
    _train(out, one_epoch.parent / "cache", "--epochs", "2", "--resume", "--export", "last")
    state = training_state.load(out / "training")
    last = {k.removeprefix("encoder."): v for k, v in state["method"].items() if k.startswith("encoder.")}

    written = load_file(out / "model.safetensors")
    assert state["epoch"] == 2 and written.keys() <= last.keys()
    assert_same_tensors(written, last)
    assert "exported weights from epoch 2 (the last epoch, `--export last`" in (out / "README.md").read_text()
    _train(out, one_epoch.parent / "cache", "--epochs", "2", "--resume")  # finished: re-export the best epoch
    best = state["best"]
    written = load_file(out / "model.safetensors")
    assert written.keys() <= best["encoder"].keys()
    assert_same_tensors(written, best["encoder"])
    assert f"exported weights from epoch {best['epoch']} (lowest validation loss," in (out / "README.md").read_text()


def test_push_to_hub_uploads_the_exported_files(one_epoch, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, exist_ok):
            calls.append(("create", repo_id, exist_ok))

        def upload_folder(self, folder_path, repo_id, allow_patterns):
            calls.append(("upload", folder_path, repo_id, tuple(allow_patterns)))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    run.push_to_hub(one_epoch, "someone/crystal-twins")
    assert calls[0] == ("create", "someone/crystal-twins", True)
    assert calls[1][1:3] == (str(one_epoch), "someone/crystal-twins")
    assert {"config.json", "metadata.json", "model.safetensors", "README.md", "checksums.json"} <= set(calls[1][3])
    assert not any("state" in pattern for pattern in calls[1][3]), "the training state stays local"


@pytest.mark.parametrize("method, options, n_features, extra_metric", [
    ("crystalclr", ["--temperature", "0.2"], 809, "train_cs"),
    ("cdssl", ["--noise-std", "0.1"], 160, "train_graph"),
    ("crysatom", ["--atom-dim", "24"], 24, "train_connectivity"),
    ("masked-denoising", ["--mask-ratio", "0.2"], 809, "train_element_accuracy"),
    ("masked-denoising", ["--composition-weight", "1"], 809, "train_composition"),
    ("crystal-twins", ["--readout", "head"], 128, None),
])
def test_other_methods_train_one_epoch_and_export_loadable_weights(tmp_path, structures, method, options, n_features,
                                                                   extra_metric):
    out = tmp_path / method
    assert run.main(["--method", method, "--data", str(STRUCTURES_FILE), "--batch-size", "32", "--lr", "1e-3",
                     "--epochs", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
                     *options]) == 0
    metrics = json.loads((out / "training" / "metrics.jsonl").read_text())
    assert np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["val_loss"])
    if extra_metric:
        assert np.isfinite(metrics[extra_metric])
    card = (out / "README.md").read_text()
    assert f"--method {method}" in card and options[0] in card
    featurizer = SSLStructureFeaturizer(weights=str(out))
    features = np.array(featurizer.featurize_many(structures[:6], pbar=False))
    assert features.shape == (6, n_features) and np.isfinite(features).all()
    assert featurizer.encoder().info.method == method and featurizer.feature_labels()[0].startswith(f"{method}-")


def test_an_option_of_another_method_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="--temperature: not an option of --method crystal-twins"):
        _train(tmp_path / "x", tmp_path / "cache", "--epochs", "1", "--temperature", "0.5")


@pytest.mark.parametrize("option, value, message", [("--epochs", "0", "must be at least 1, got 0"),
                                                   ("--batch-size", "-4", "must be at least 1, got -4"),
                                                   ("--lr", "0", "must be above 0, got 0")])
def test_a_run_that_could_not_train_is_refused_before_reading_data(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit):
        _train(tmp_path / "x", tmp_path / "cache", option, value)
    assert f"argument {option}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "cache").exists()


def test_a_run_killed_mid_epoch_resumes_to_the_export_of_an_uninterrupted_run(tmp_path, one_epoch, single_thread):
    import os
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    cache = one_epoch.parent / "cache"
    straight = tmp_path / "straight"
    _train(straight, cache, "--epochs", "2")
    killed = tmp_path / "killed"
    args = [sys.executable, "-m", "pretraining.run", "--method", "crystal-twins", "--data", str(STRUCTURES_FILE),
            "--batch-size", "32", "--lr", "1e-3", "--out", str(killed), "--cache-dir", str(cache), "--no-progress",
            "--epochs", "2"]
    process = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.DEVNULL)
    metrics = killed / "training" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "killed before it could finish"
    _train(killed, cache, "--epochs", "2", "--resume")
    assert_same_tensors(load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors"))


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_state(tmp_path, one_epoch, monkeypatch):
    from pretraining.methods import CrystalTwins

    original, calls = CrystalTwins.loss, []

    def poisoned(self, batch):
        calls.append(1)
        loss, metrics = original(self, batch)
        return (loss * float("nan"), metrics) if len(calls) > 5 else (loss, metrics)  # epoch 1: 4 + 1 batches

    monkeypatch.setattr(CrystalTwins, "loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(SystemExit, match=r"loss became nan.*epoch 1.*lower --lr"):
        _train(out, one_epoch.parent / "cache", "--epochs", "3")
    assert training_state.load(out / "training")["epoch"] == 1 and (out / "model.safetensors").exists()


def test_crysatom_vectors_as_fixed_inputs_of_a_pretraining_run(tmp_path, structures):
    import torch

    from matssl_featurizers.elements import element_table

    out = tmp_path / "ct-crysatom"
    assert _train(out, tmp_path / "cache", "--epochs", "1", "--atom-input", "crysatom") == 0
    encoder = PretrainedEncoder.from_pretrained(out)
    assert encoder.config["atom_input"] == "crysatom" and "atom_input" in (out / "README.md").read_text()
    torch.testing.assert_close(encoder.element_table, element_table("crysatom"), equal_nan=True)
    features = np.array(SSLStructureFeaturizer(weights=str(out)).featurize_many(structures[:6], pbar=False))
    assert features.shape == (6, 809) and np.isfinite(features).all()
    with pytest.raises(SystemExit, match="--atom-input: not an option of --method cdssl"):
        run.main(["--method", "cdssl", "--data", str(STRUCTURES_FILE), "--out", str(tmp_path / "x"), "--atom-input", "crysatom"])


def test_a_run_on_a_handful_of_structures_still_validates_and_exports(tmp_path):
    out = tmp_path / "tiny"
    assert _train(out, tmp_path / "cache", "--epochs", "1", "--limit", "12") == 0
    metrics = json.loads((out / "training" / "metrics.jsonl").read_text())
    assert np.isfinite(metrics["val_loss"]) and (out / "model.safetensors").is_file()
    assert data.split_indices(12, 0)[1].size == 2 and data.split_indices(3, 0)[1].size == 0


def test_learning_rate_warms_up_then_decays_to_zero_and_resumes_on_the_same_curve(tmp_path, one_epoch):
    rates = [run.learning_rate(step, 100, 10, 1e-3) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:])) and rates[-1] < 1e-6
    metrics = [json.loads(line) for line in (one_epoch / "training" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["lr"] == pytest.approx(run.learning_rate(3, 4, 2, 1e-3)), "the rate of the epoch's last step"
    assert training_state.load(one_epoch / "training")["step"] == 4  # 142 training structures in batches of 32, the last partial batch dropped


def test_excluded_and_repeated_ids_are_left_out_and_validation_batches_are_shuffled(tmp_path, rows):
    from pretraining.data import build_graphs

    store = build_graphs([STRUCTURES_FILE, STRUCTURES_FILE], cache_dir=tmp_path / "cache", progress=False)
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("\n".join(r["id"] for r in rows[:10]) + "\n")
    positions, counts = data.corpus_rows(store, [exclude])
    assert counts == {"n_duplicate_ids": len(rows), "n_excluded": 10}
    assert [store.ids[i] for i in positions] == [r["id"] for r in rows[10:]]
    train, val = data.split_indices(1000, 0)
    assert not np.all(np.diff(val) > 0), "validation order is shuffled, not sorted by file"
    assert sorted(set(train) | set(val)) == list(range(1000))


def test_limit_reads_only_the_first_entries(tmp_path, monkeypatch):
    parsed = []
    original = data._payload_to_arrays
    monkeypatch.setattr(data, "_payload_to_arrays", lambda payload: parsed.append(1) or original(payload))
    store = data.build_graphs([STRUCTURES_FILE], cache_dir=tmp_path / "cache", progress=False, limit=7)
    assert len(store) == 7 and len(parsed) == 7


def test_the_card_lists_only_the_files_structures_were_read_from(tmp_path, rows):
    castelli, carbon = tmp_path / "castelli_perovskites.jsonl", tmp_path / "carbon24.jsonl"
    castelli.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"].startswith(("castelli-", "cmr-"))))
    carbon.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"].startswith("C-")))
    out = tmp_path / "run"
    assert run.main(["--method", "crystal-twins", "--data", str(castelli), str(carbon), "--limit", "12", "--epochs", "1",
                     "--batch-size", "4", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    data = (out / "README.md").read_text().split("## Training data\n")[1].split("## Training procedure")[0]
    assert data.startswith("- `castelli_perovskites` (12): 12 structures used")
    assert "carbon" not in data.lower() and "Materials Project" not in data


def test_defaults_are_the_settings_of_the_bundled_weights():
    args = run.training_settings(run.parse_args(["--method", "crystalclr", "--data", "x", "--out", "y"]))
    assert (args.epochs, args.batch_size, args.lr) == tuple(run.TRAINING_DEFAULTS["crystalclr"].values())
    assert run.training_settings(run.parse_args(["--method", "cdssl", "--data", "x", "--out", "y", "--lr", "0.1"])).lr == 0.1


def test_the_cli_defaults_reproduce_every_bundled_model():
    """`python -m pretraining.run --method M` without --epochs/--batch-size/--lr trains as the bundled M was: the
    four models' cards and the CrysAtom vectors' card record the run (its last command, for a resumed one)."""
    import re
    import shlex

    import matssl_featurizers

    methods = set()
    for card in sorted((Path(matssl_featurizers.__file__).parent / "models").glob("*/README.md")):
        line = next(line for line in card.read_text().splitlines() if line.startswith("- command"))
        args = run.parse_args(shlex.split(re.findall(r"`(python -m pretraining\.run [^`]*)`", line)[-1])[3:])
        defaults = run.TRAINING_DEFAULTS[args.method]
        assert (args.epochs, args.batch_size, args.lr) == (defaults["epochs"], defaults["batch_size"], defaults["lr"]), card
        methods.add(args.method)
    assert methods == set(run.TRAINING_DEFAULTS)


def test_a_wider_cgcnn_encoder_from_the_command_line(tmp_path, structures):
    out = tmp_path / "md-32"
    assert run.main(["--method", "masked-denoising", "--data", str(STRUCTURES_FILE), "--out", str(out), "--epochs", "1",
                     "--batch-size", "32", "--atom-fea-len", "32", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert PretrainedEncoder.from_pretrained(out).config["atom_fea_len"] == 32 and '"atom_fea_len": 32' in (out / "README.md").read_text()
    features = np.array(SSLStructureFeaturizer(weights=str(out)).featurize_many(structures[:4], pbar=False))
    assert features.shape == (4, 4 * 3 * 32 + 41) and np.isfinite(features).all()
    with pytest.raises(SystemExit, match="--atom-fea-len: not an option of --method cdssl"):
        run.main(["--method", "cdssl", "--data", str(STRUCTURES_FILE), "--out", str(tmp_path / "x"), "--atom-fea-len", "32"])


def test_threads_are_an_option_and_default_to_the_idle_cores_shared_among_processes(monkeypatch):
    monkeypatch.setattr(run, "idle_cores", lambda: 6)
    assert run.torch_thread_count(3) == 3
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert run.torch_thread_count(None) == 6
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert run.torch_thread_count(None) == 1, "6 idle cores among 4 processes on this machine"
    with pytest.raises(SystemExit):
        run.parse_args(["--method", "cdssl", "--data", "x", "--out", "y", "--threads", "0"])
