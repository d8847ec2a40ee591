import re
from contextlib import contextmanager

import pytest

from matssl_featurizers.bundled import bundled_models
from matssl_featurizers.hybrid import PRESETS
from matssl_featurizers.sources import DEFAULT_MODEL
from pretraining.evaluation import benchmark
from tests.conftest import STRUCTURES_FILE


def test_the_benchmark_reports_every_featurizer_the_ratios_the_targets_and_memory(capsys):
    assert benchmark.main(["--data", str(STRUCTURES_FILE), "-n", "40", "--n-slow", "2", "--stream", "200",
                           "--workers", "1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("40 structures from structures.jsonl.gz")
    assert re.search(r"^threads: every bundled model, .* n_threads=1 .*matminer's featurizers n_jobs=1$", out, re.M)
    header = "| featurizer | structures/s | vs ElementProperty | vs SineCoulombMatrix | vs SiteStatsFingerprint |"
    assert header in out
    names = [*bundled_models(), *(f"{m} (n_workers=1)" for m in bundled_models()), *(f"preset:{p}" for p in PRESETS),
             "ShellAnisotropy", "ElementProperty", "SineCoulombMatrix", "SiteStatsFingerprint"]
    assert "preset:hybrid-anisotropy-magpie" in names
    for name in names:
        assert re.search(rf"^\| {re.escape(name)} \| [\d.]+ \| [\d.]+x \| [\d.]+x \| [\d.]+x \|$", out, re.M), name
    assert re.search(r"^\| SineCoulombMatrix \| [\d.]+ \| [\d.]+x \| 1\.00x \|", out, re.M)
    assert len(re.findall(r"^target: every shipped model \(in-process\) >= .*: (met|MISSED)$", out, re.M)) == 2
    assert re.search(r"^speed-up of n_workers=1 over in-process: .*crystal-twins [\d.]+x", out, re.M)
    assert re.search(r"ms per structure: neighbours [\d.]+, collation [\d.]+, forward [\d.]+", out)
    assert re.search(r"^stream of 200 structures .* peak RSS \d+ MB$", out, re.M), "the 150 fixtures, cycled"
    assert re.search(r"^seconds from import to the first vector .*SSLStructureFeaturizer [\d.]+, SineCoulombMatrix [\d.]+, "
                     r"ElementProperty [\d.]+$", out, re.M)
    assert re.search(r"^target: first vector of the default model < 3 s: [\d.]+ s, (met|MISSED) \([\d.]+x SineCoulombMatrix", out, re.M)
    assert "one core busy" not in out, "--contention only when asked for"


def test_data_is_required(capsys):
    with pytest.raises(SystemExit):
        benchmark.main([])
    assert "the following arguments are required: --data" in capsys.readouterr().err


def test_every_featurizer_of_ours_gets_the_threads_asked_for():
    featurizers = benchmark.ours(batch_size=16, threads=3)
    assert set(featurizers) == {*bundled_models(), *(f"preset:{p}" for p in PRESETS), "ShellAnisotropy"}
    assert all(f.n_threads == 3 and f.batch_size == 16 for f in featurizers.values())
    assert featurizers["preset:hybrid-anisotropy-magpie"].magpie


def test_contention_times_every_featurizer_with_a_core_busy_and_reports_the_target(monkeypatch, capsys):
    timed, busy = [], []

    @contextmanager
    def fake_busy_core():
        busy.append("start")
        yield
        busy.append("stop")

    def fake_rates(featurizers, structures, repeat, label=""):
        timed.append((sorted(featurizers), label, busy[-1]))
        return {name: 250.0 if name == "preset:hybrid-anisotropy" else 500.0 for name in featurizers}

    monkeypatch.setattr(benchmark, "busy_core", fake_busy_core)
    monkeypatch.setattr(benchmark, "rates_of", fake_rates)
    monkeypatch.setattr(benchmark.os, "cpu_count", lambda: 4)
    args = benchmark.parse_args(["--data", str(STRUCTURES_FILE), "--threads", "2", "--contention"])
    benchmark.contention([], args)
    out = capsys.readouterr().out
    assert busy == ["start", "stop"] and all(started == "start" for *_, started in timed), "timed while the core is busy"
    assert timed[0][0] == sorted(benchmark.ours(args.batch_size, 2)) and timed[0][1] == " (one core busy)"
    assert timed[1][0] == [f"{DEFAULT_MODEL} n_threads=4"] and len(timed) == 2
    assert "n_threads=2" in out.splitlines()[0]
    assert "target: preset:hybrid-anisotropy >= 300 structures/s with one core busy: 250, MISSED" in out
    assert re.search(r"n_threads=2 500 structures/s, n_threads=4 \(one per core, torch's default\) 500", out)


def test_busy_core_runs_another_process_only_inside_the_block(monkeypatch):
    started = []
    original = benchmark.subprocess.Popen
    monkeypatch.setattr(benchmark.subprocess, "Popen", lambda *a, **k: started.append(original(*a, **k)) or started[-1])
    monkeypatch.setattr(benchmark.time, "sleep", lambda seconds: None)
    with benchmark.busy_core():
        assert len(started) == 1 and started[0].poll() is None
    assert started[0].poll() is not None
