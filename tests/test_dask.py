import subprocess
import sys

import pandas as pd
import pytest

from matssl_featurizers import SSLStructureFeaturizer

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")


def _loaded_models():
    from matssl_featurizers.dask import _LOADED

    return sum("_cached_encoder" in featurizer.__dict__ for featurizer in _LOADED.values())


def test_a_two_worker_cluster_gives_exactly_the_single_process_result(structures_df):
    from matssl_featurizers.dask import featurize_dask

    df = structures_df.copy()
    disordered = df["structure"].iloc[7].copy()
    disordered.replace(0, {"Fe": 0.5, "Co": 0.5})
    df.iloc[7, df.columns.get_loc("structure")] = disordered
    featurizer = SSLStructureFeaturizer("cdssl", batch_size=16)
    expected = featurizer.featurize_dataframe(df, "structure", ignore_errors=True, pbar=False)
    assert expected.iloc[7, -1] != expected.iloc[7, -1] and expected.drop(index=df.index[7]).notna().all().all()

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with dask.config.set({"dataframe.convert-string": False}):
            ddf = dd.from_pandas(df, chunksize=32, sort=False)  # whole batches of 16, as in the single process
        lazy = featurize_dask(ddf, "structure", SSLStructureFeaturizer("cdssl", batch_size=16), ignore_errors=True)
        assert list(lazy.columns) == list(expected.columns)
        out = lazy.compute()
        per_worker = client.run(_loaded_models)
        with pytest.raises(ValueError, match="disordered"):
            featurize_dask(ddf, "structure", SSLStructureFeaturizer("cdssl", batch_size=16)).compute()
    pd.testing.assert_frame_equal(out, expected, check_exact=True)
    assert ddf.npartitions == 5 and len(per_worker) == 2
    assert set(per_worker.values()) <= {0, 1} and sum(per_worker.values()) >= 1, "a worker loads the model once"


def test_structures_that_dask_turned_into_strings_are_refused(structures_df):
    from matssl_featurizers.dask import featurize_dask

    with dask.config.set({"dataframe.convert-string": True}):
        ddf = dd.from_pandas(structures_df.iloc[:4], npartitions=1)
    with pytest.raises(TypeError, match="convert-string"):
        featurize_dask(ddf, "structure", SSLStructureFeaturizer())


def test_the_package_imports_and_featurizes_without_dask(structures):
    code = ("import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None\n"
            "import pickle, matssl_featurizers\n"
            "from matssl_featurizers import SSLStructureFeaturizer\n"
            "structures = pickle.loads(sys.stdin.buffer.read())\n"
            "print(len(SSLStructureFeaturizer().featurize_many(structures, pbar=False)))")
    import pickle

    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(structures[:3]), capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == "3"
