import re

from matssl_featurizers import benchmark
from matssl_featurizers.hybrid import PRESETS
from matssl_featurizers.weights import bundled_index
from tests.conftest import STRUCTURES_FILE


def test_the_benchmark_reports_every_featurizer_the_ratios_the_targets_and_memory(capsys):
    assert benchmark.main(["--data", str(STRUCTURES_FILE), "-n", "40", "--n-slow", "2", "--stream", "200",
                           "--workers", "1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("40 structures from structures.jsonl.gz")
    header = "| featurizer | structures/s | vs ElementProperty | vs SineCoulombMatrix | vs SiteStatsFingerprint |"
    assert header in out
    names = [*bundled_index(), *(f"{m} (n_workers=1)" for m in bundled_index()), *(f"preset:{p}" for p in PRESETS),
             "ShellAnisotropy", "ElementProperty", "SineCoulombMatrix", "SiteStatsFingerprint"]
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
