import gzip
import json
import shutil

import pandas as pd
import pytest

from pretraining import data
from tests.conftest import STRUCTURES_FILE


def test_jsonl_directory_and_dataframe_sources_give_the_same_graphs(tmp_path, structures, rows):
    folder = tmp_path / "cifs"
    folder.mkdir()
    for row, structure in zip(rows[:5], structures[:5]):
        structure.to(filename=str(folder / f"{row['id']}.cif"))
    pd.DataFrame({"structure": structures[:5]}, index=[r["id"] for r in rows[:5]]).to_pickle(tmp_path / "df.pkl")
    from matminer.utils.io import store_dataframe_as_json

    store_dataframe_as_json(pd.DataFrame({"s": structures[:5]}), str(tmp_path / "df.json"))

    jsonl = tmp_path / "five.jsonl"
    jsonl.write_text("".join(json.dumps({"id": r["id"], "structure": s.as_dict()}) + "\n" for r, s in zip(rows[:5], structures[:5])))

    stores = [data.build_graphs(p, cache_dir=tmp_path / "cache", progress=False)
              for p in (folder, tmp_path / "df.pkl", tmp_path / "df.json", jsonl)]
    for store in stores:
        assert len(store) == 5 and store.skipped == 0
    by_id = {r["id"]: i for i, r in enumerate(rows[:5])}
    folder_store = stores[0]
    for k, file_id in enumerate(folder_store.ids):
        i = by_id[file_id.removesuffix(".cif")]
        assert len(folder_store.graph(k)["atomic_numbers"]) == len(structures[i])
        assert stores[3].graph(i)["edge_index"].shape == folder_store.graph(k)["edge_index"].shape


def test_unreadable_rows_are_skipped_and_counted_or_fail_with_strict(tmp_path, rows):
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as handle:
        handle.write(json.dumps({"id": "ok-1", "cif": rows[0]["cif"]}) + "\n")
        handle.write("{not json\n")
        handle.write(json.dumps({"id": "broken-cif", "cif": "data_x\n_cell_length_a 3\n"}) + "\n")
        handle.write(json.dumps({"id": "ok-2", "cif": rows[1]["cif"]}) + "\n")
    with pytest.warns(UserWarning, match="skipped 2"):
        store = data.build_graphs(bad, cache_dir=tmp_path / "c1", progress=False)
    assert list(store.ids) == ["ok-1", "ok-2"] and store.skipped == 2
    with pytest.raises(ValueError, match="cannot be read"):
        data.build_graphs(bad, cache_dir=tmp_path / "c2", strict=True, progress=False)


def test_overlapping_sites_are_warned_about_once_per_build(tmp_path, rows, structures):
    doubled = structures[0].copy()
    doubled.append(structures[0][0].specie, structures[0][0].coords, coords_are_cartesian=True)  # a duplicated site
    path = tmp_path / "doubled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [{"id": "doubled", "structure": doubled.as_dict()}, *rows[:3]]))
    message = (r"^1 of 4 structures have two sites closer than any two atoms can be \(0\.5 Å\), e\.g\. doubled: "
               f"sites 0 and {len(structures[0])}, 0.000 Å apart$")
    with pytest.warns(UserWarning, match=message) as caught:
        store = data.build_graphs(path, cache_dir=tmp_path / "cache", workers=2, progress=False)
    assert len(caught) == 1 and len(store) == 4


def test_graphs_are_built_once_then_read_from_the_cache(tmp_path, monkeypatch):
    first = data.build_graphs(STRUCTURES_FILE, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    def must_not_run(payload):
        raise AssertionError("graphs rebuilt despite the cache")

    monkeypatch.setattr(data, "_payload_to_arrays", must_not_run)
    second = data.build_graphs(STRUCTURES_FILE, cache_dir=tmp_path, progress=False)
    assert len(second) == len(first) == 150
    assert (second.edge_index == first.edge_index).all()


def test_the_store_knows_the_file_of_each_graph_also_from_the_cache(tmp_path, monkeypatch):
    first, second = tmp_path / "first.jsonl.gz", tmp_path / "second.jsonl.gz"
    shutil.copyfile(STRUCTURES_FILE, first)
    shutil.copyfile(STRUCTURES_FILE, second)
    assert list(data.build_graphs([first, second], cache_dir=tmp_path / "c", progress=False, limit=160).source) == [0] * 150 + [1] * 10
    full = data.build_graphs([first, second], cache_dir=tmp_path / "c", progress=False)
    monkeypatch.setattr(data, "_payload_to_arrays", lambda payload: pytest.fail("graphs rebuilt despite the cache"))
    for limit in (None, 160, 20):  # read back from the cache: the whole store, the limited one and a head of the whole
        store = data.build_graphs([first, second], cache_dir=tmp_path / "c", progress=False, limit=limit)
        assert (store.source == full.source[:len(store)]).all() and len(store) == (limit or 300)
    assert list(store.source) == [0] * 20


def test_the_cache_follows_file_contents_not_paths_or_times(tmp_path):
    copy = tmp_path / "copy" / STRUCTURES_FILE.name
    copy.parent.mkdir()
    shutil.copyfile(STRUCTURES_FILE, copy)  # a fresh copy: new path and modification time
    assert data._cache_key([copy], None) == data._cache_key([STRUCTURES_FILE], None)
    with gzip.open(copy, "rt") as handle:
        first_line = handle.readline()
    with gzip.open(copy, "wt") as handle:
        handle.write(first_line)
    assert data._cache_key([copy], None) != data._cache_key([STRUCTURES_FILE], None)


def test_parallel_build_equals_serial(tmp_path):
    serial = data.build_graphs(STRUCTURES_FILE, cache_dir=tmp_path / "a", progress=False)
    parallel = data.build_graphs(STRUCTURES_FILE, cache_dir=tmp_path / "b", workers=2, progress=False)
    assert (serial.ids == parallel.ids).all()
    assert (serial.edge_index == parallel.edge_index).all() and (serial.frac_coords == parallel.frac_coords).all()
