"""Throughput and memory of the featurizers on real structures, against matminer's.

    python -m pretraining.evaluation.benchmark --data ../shared/data/{mp_cgcnn,castelli_perovskites,carbon24}.jsonl.gz \
        [-n 2000] [--n-slow 40] [--stream 10000 100000] [--threads 1] [--contention]

Structures are parsed before any clock starts (CIF parsing is not featurization). Every bundled
model, every hybrid preset, ShellAnisotropy, ElementProperty (magpie, on each structure's composition), SineCoulombMatrix and
SiteStatsFingerprint (CrystalNN ops preset, on every k-th structure of the same sample) featurize
the sample in this process; the table gives structures/second and the ratios. Each featurizer gets its threads as a
user would give them (``n_threads=--threads``; nothing is set for the whole process), and the output says which.
``--contention`` times them all again while another process keeps one core busy, and the default model with
one thread against torch's default of one per core. Then the default model streams ``--stream`` structures (the
files interleaved and cycled, CIF parsed lazily) through
:meth:`~matssl_featurizers.featurizers.SSLStructureFeaturizer.featurize_iter`, each length in a fresh
process, whose peak RSS is reported.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TARGETS = {"SineCoulombMatrix": 1.5, "SiteStatsFingerprint": 100.0}
FIRST_VECTOR_TARGET = 3.0  # seconds from importing the featurizer to the first vector
CONTENTION_TARGET = 300  # structures/s of preset:hybrid-anisotropy with another process on one core
FIRST_VECTOR = {
    "SSLStructureFeaturizer": "from matssl_featurizers import SSLStructureFeaturizer as F; f = F()",
    "SineCoulombMatrix": "from matminer.featurizers.structure import SineCoulombMatrix as F; f = F(flatten=False)",
    "ElementProperty": "from matminer.featurizers.composition import ElementProperty as F; "
                       "f = F.from_preset('magpie', impute_nan=True); s = s.composition",
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pretraining.evaluation.benchmark", description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", type=Path, required=True,
                   help="JSON Lines (.jsonl[.gz]) with a 'cif' key per line, e.g. the shared data files")
    p.add_argument("-n", type=int, default=2000, help="structures in the sample, taken evenly from the --data files")
    p.add_argument("--n-slow", type=int, default=40, help="structures of the sample for SiteStatsFingerprint")
    p.add_argument("--stream", type=int, nargs="*", default=[10_000, 100_000],
                   help="lengths of the streaming runs (the files interleaved and cycled); none to skip")
    p.add_argument("--workers", type=int, nargs="*", default=[1], help="n_workers values to time besides 0")
    p.add_argument("--threads", type=int, default=1, help="n_threads of every featurizer that runs torch (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3, help="timed runs per featurizer; the fastest counts")
    p.add_argument("--contention", action="store_true",
                   help="also time every featurizer while another process keeps one core busy, and the default model with "
                        "one thread and with torch's default of one per core")
    return p.parse_args(argv)


def _parse(line: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(json.loads(line)["cif"], fmt="cif")


def _lines(path: Path):
    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as handle:
        yield from (line for line in handle if line.strip())


def sample(paths, n: int) -> list:
    """``n`` parsed structures: the first ``n / len(paths)`` of each file."""
    per_file = -(-n // len(paths))
    lines = [line for path in paths for line in itertools.islice(_lines(path), per_file)]
    return [_parse(line) for line in lines[:n]]


def stream(paths, n: int):
    """``n`` structures, one line of each file in turn (so every stretch has the same mix), each file
    restarted when it ends, each CIF parsed only when it is reached."""
    def forever(path):
        while True:
            yield from _lines(path)

    interleaved = itertools.chain.from_iterable(zip(*(forever(path) for path in paths)))
    return (_parse(line) for line in itertools.islice(interleaved, n))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB.

    On Linux the high-water mark of this process's own memory (``VmHWM``): ``ru_maxrss`` of a spawned
    child also counts its parent's memory at the fork that preceded the exec.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024 / 1e6
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def first_vector_seconds(setup: str, path: Path) -> float:
    """Seconds from importing a featurizer to its first vector, in a fresh interpreter that has already
    imported pymatgen and parsed the structure (as a user's session has): ``setup`` imports the class as ``F``
    and builds ``f`` (it may replace the input ``s``)."""
    code = (f"import gzip, json, time, warnings; warnings.simplefilter('ignore')\n"
            f"from pymatgen.core import Structure\n"
            f"s = Structure.from_str(json.loads(next(l for l in gzip.open({str(path)!r}, 'rt') if l.strip()))['cif'], fmt='cif')\n"
            f"started = time.perf_counter()\n{setup.replace('; ', chr(10))}\nf.featurize(s)\n"
            f"print(time.perf_counter() - started)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


@contextmanager
def busy_core():
    """Another process spinning on one core for the duration of the block (a machine with other work on it)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start
        yield
    finally:
        spinner.kill()
        spinner.wait()


def ours(batch_size: int, threads: int) -> dict:
    """Name -> featurizer of every bundled model, hybrid preset and ShellAnisotropy, each with ``n_threads=threads``."""
    from matssl_featurizers.anisotropy import ShellAnisotropy
    from matssl_featurizers.featurizers import SSLStructureFeaturizer
    from matssl_featurizers.hybrid import PRESETS, HybridStructureFeaturizer
    from matssl_featurizers.sources import bundled_names

    out = {m: SSLStructureFeaturizer(m, batch_size=batch_size, n_threads=threads) for m in bundled_names()}
    out.update({f"preset:{p}": HybridStructureFeaturizer.from_preset(p, batch_size=batch_size, n_threads=threads)
                for p in sorted(PRESETS)})
    out["ShellAnisotropy"] = ShellAnisotropy(batch_size=batch_size, n_threads=threads)
    return out


def rates_of(featurizers: dict, structures, repeat: int, label: str = "") -> dict:
    """Structures per second of each featurizer (the fastest of ``repeat`` runs, after one warm-up batch)."""
    out = {}
    for name, featurizer in featurizers.items():
        featurizer.featurize_many(structures[:64], pbar=False)  # load weights, start workers
        out[name] = _rate(lambda s: featurizer.featurize_many(s, pbar=False), structures, repeat)
        print(f"  {name}{label}: {out[name]:.0f} structures/s", flush=True)
    return out


def _rate(featurize, structures, repeat: int) -> float:
    """Structures per second of the fastest of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        featurize(structures)
        best = min(best, time.perf_counter() - started)
    return len(structures) / best


def _stream_run(paths, n: int, model: str, batch_size: int, threads: int) -> tuple[float, int, float]:
    """Seconds, structures featurized and peak RSS (MB) of streaming ``n`` structures, in this (fresh) process."""
    from matssl_featurizers.featurizers import SSLStructureFeaturizer

    featurizer = SSLStructureFeaturizer(model, batch_size=batch_size, n_threads=threads)
    started, count = time.perf_counter(), 0
    for block in featurizer.featurize_iter(stream(paths, n)):
        count += len(block)
    return time.perf_counter() - started, count, peak_rss_mb()


def stage_times(featurizer, structures) -> dict:
    """Milliseconds per structure of neighbour search, collation and forward pass."""
    import torch

    from matssl_featurizers.graphs import collate_arrays
    from matssl_featurizers.neighbors import neighbor_arrays
    from matssl_featurizers.runtime import torch_threads

    size = featurizer.batch_size
    started = time.perf_counter()
    graphs = [neighbor_arrays(s) for s in structures]
    neighbours = time.perf_counter() - started
    started = time.perf_counter()
    batches = [collate_arrays(graphs[i:i + size]) for i in range(0, len(graphs), size)]
    collation = time.perf_counter() - started
    encoder = featurizer.encoder()
    started = time.perf_counter()
    with torch.inference_mode(), torch_threads(featurizer.n_threads):
        for batch in batches:
            encoder(batch.to(featurizer.device))
    forward = time.perf_counter() - started
    return {k: 1000 * v / len(structures) for k, v in
            (("neighbours", neighbours), ("collation", collation), ("forward", forward))}


THREADS_NOTE = ("threads: every bundled model, the structure and anisotropy blocks of the presets and ShellAnisotropy "
                "n_threads={threads} (torch, set for their own work only); the CGCNN92 block of the presets numpy; "
                "matminer's featurizers n_jobs=1")


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = [str(p) for p in args.data if not p.is_file()]
    if missing:
        sys.exit(f"not found: {', '.join(missing)} (pass --data)")
    from matminer.featurizers.composition import ElementProperty
    from matminer.featurizers.structure import SineCoulombMatrix, SiteStatsFingerprint, StructureComposition

    from matssl_featurizers.featurizers import SSLStructureFeaturizer
    from matssl_featurizers.sources import DEFAULT_MODEL, bundled_names

    warnings.simplefilter("ignore")  # matminer's and pymatgen's about oxidation states and radii
    structures = sample(args.data, args.n)
    step = max(1, len(structures) // args.n_slow)
    slow = structures[::step][:args.n_slow]
    print(f"{len(structures)} structures from {', '.join(p.name for p in args.data)} "
          f"(mean {np.mean([len(s) for s in structures]):.1f} sites, max {max(len(s) for s in structures)}); "
          f"SiteStatsFingerprint on {len(slow)} of them (every {step}th, mean {np.mean([len(s) for s in slow]):.1f} sites); "
          f"batch size {args.batch_size}, fastest of {args.repeat} runs", flush=True)
    print(THREADS_NOTE.format(threads=args.threads), flush=True)

    featurizers = ours(args.batch_size, args.threads)
    for workers in args.workers:
        featurizers.update({f"{m} (n_workers={workers})": SSLStructureFeaturizer(
            m, batch_size=args.batch_size, n_workers=workers, n_threads=args.threads) for m in bundled_names()})
    rates = rates_of(featurizers, structures, args.repeat)
    magpie = StructureComposition(ElementProperty.from_preset("magpie", impute_nan=True))
    scm = SineCoulombMatrix(flatten=True).fit(structures)
    ssf = SiteStatsFingerprint.from_preset("CrystalNNFingerprint_ops")
    baselines = {"ElementProperty": (magpie, structures), "SineCoulombMatrix": (scm, structures),
                 "SiteStatsFingerprint": (ssf, slow)}
    for name, (featurizer, inputs) in baselines.items():
        featurizer.set_n_jobs(1)
        rates[name] = _rate(lambda s: featurizer.featurize_many(s, pbar=False), inputs, args.repeat)
        print(f"  {name}: {rates[name]:.1f} structures/s", flush=True)

    print()
    print(f"| featurizer | structures/s | {' | '.join(f'vs {b}' for b in baselines)} |")
    print("|---|---|" + "---|" * len(baselines))
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | " + " | ".join(f"{rate / rates[b]:.2f}x" for b in baselines) + " |")
    print()
    models = bundled_names()
    for baseline, target in TARGETS.items():
        worst = min(models, key=rates.get)
        ratio = rates[worst] / rates[baseline]
        print(f"target: every shipped model (in-process) >= {target:g}x {baseline}: slowest is {worst} at {ratio:.1f}x: "
              + ("met" if ratio >= target else "MISSED"))
    for workers in args.workers:
        print(f"speed-up of n_workers={workers} over in-process: "
              + ", ".join(f"{m} {rates[f'{m} (n_workers={workers})'] / rates[m]:.2f}x" for m in models))
    stages = stage_times(SSLStructureFeaturizer(DEFAULT_MODEL, batch_size=args.batch_size, n_threads=args.threads),
                         structures)
    print(f"{DEFAULT_MODEL}, ms per structure: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB", flush=True)

    firsts = {name: min(first_vector_seconds(setup, args.data[0]) for _ in range(args.repeat))
              for name, setup in FIRST_VECTOR.items()}
    print("seconds from import to the first vector (fresh interpreter, pymatgen already loaded; fastest of "
          f"{args.repeat}): " + ", ".join(f"{k} {v:.2f}" for k, v in firsts.items()))
    first = firsts["SSLStructureFeaturizer"]
    print(f"target: first vector of the default model < {FIRST_VECTOR_TARGET:g} s: {first:.2f} s, "
          + ("met" if first < FIRST_VECTOR_TARGET else "MISSED")
          + f" ({first / firsts['SineCoulombMatrix']:.2f}x SineCoulombMatrix's, {first / firsts['ElementProperty']:.2f}x ElementProperty's)")
    if args.contention:
        contention(structures, args)

    context = multiprocessing.get_context("spawn")
    for n in args.stream:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            seconds, count, rss = pool.submit(_stream_run, args.data, n, DEFAULT_MODEL, args.batch_size,
                                              args.threads).result()
        print(f"stream of {count:,} structures ({DEFAULT_MODEL}, CIF parsed lazily, in a fresh process): "
              f"{seconds:.0f} s ({count / seconds:.0f} structures/s including CIF parsing), peak RSS {rss:.0f} MB",
              flush=True)
    return 0


def contention(structures, args) -> None:
    """Every featurizer of :func:`ours` while another process keeps one core busy, the hybrid-anisotropy target, and
    the default model with one torch thread against torch's default of one per core."""
    from matssl_featurizers.featurizers import SSLStructureFeaturizer
    from matssl_featurizers.sources import DEFAULT_MODEL

    print(f"with one core kept busy by another process ({THREADS_NOTE.format(threads=args.threads)}):", flush=True)
    cores = os.cpu_count()
    with busy_core():
        rates = rates_of(ours(args.batch_size, args.threads), structures, args.repeat, " (one core busy)")
        per_core = rates_of({f"{DEFAULT_MODEL} n_threads={cores}": SSLStructureFeaturizer(
            batch_size=args.batch_size, n_threads=cores)}, structures, args.repeat, " (one core busy)")
    rate = rates["preset:hybrid-anisotropy"]
    print(f"target: preset:hybrid-anisotropy >= {CONTENTION_TARGET} structures/s with one core busy: {rate:.0f}, "
          + ("met" if rate >= CONTENTION_TARGET else "MISSED"))
    print(f"with one core busy, {DEFAULT_MODEL}: n_threads={args.threads} {rates[DEFAULT_MODEL]:.0f} structures/s, "
          f"n_threads={cores} (one per core, torch's default) {per_core[f'{DEFAULT_MODEL} n_threads={cores}']:.0f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
