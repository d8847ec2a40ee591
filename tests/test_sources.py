import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from matssl_featurizers import bundled, sources
from matssl_featurizers.bundled import sha256
from matssl_featurizers.encoders import CGCNNEncoder, PretrainedEncoder
from tests.conftest import save_model

load = PretrainedEncoder.from_pretrained


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    return save_model(CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8), tmp_path / "model")


def test_missing_sources_name_themselves(tmp_path, model_dir):
    with pytest.raises(OSError, match="no-such-model"):
        load("no-such-model")
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(OSError, match="model.safetensors not found"):
        load(model_dir)


def test_a_pickle_is_never_a_fallback_for_safetensors(model_dir):
    (model_dir / "model.safetensors").rename(model_dir / "pytorch_model.bin")
    with pytest.raises(OSError, match="model.safetensors not found"):
        load(model_dir)


def test_corrupt_safetensors_file_is_refused(model_dir):
    (model_dir / "model.safetensors").write_bytes(b"not a safetensors file")
    (model_dir / "checksums.json").unlink()  # the parser, not the checksum, must refuse it
    with pytest.raises(Exception, match="(?i)header|invalid|deserializ"):
        load(model_dir)


def test_bundled_default_model_is_checked_against_its_sha256(monkeypatch):
    encoder = load()
    assert encoder.config["architecture"] == "cgcnn" and encoder.name == sources.DEFAULT_MODEL
    index = bundled.bundled_models()
    assert sorted(index[sources.DEFAULT_MODEL]["sha256"]) == ["config.json", "metadata.json", "model.safetensors"]
    for file in ("model.safetensors", "metadata.json"):
        tampered = {name: {**entry, "sha256": {**entry["sha256"], file: "0" * 64}} for name, entry in index.items()}
        monkeypatch.setattr(bundled, "bundled_models", lambda: tampered)
        with pytest.raises(OSError, match=f"{file} does not match its recorded sha256"):
            load(sources.DEFAULT_MODEL)


def _lay_out_hub_cache(cache, repo, files_dir, commit):
    """The on-disk layout huggingface_hub serves offline: refs/<branch> -> snapshots/<commit>/<files>."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    shutil.copytree(files_dir, root / "snapshots" / commit)


HUB_SCRIPT = """
import sys, torch
from matssl_featurizers import PretrainedEncoder
try:
    encoder = PretrainedEncoder.from_pretrained(sys.argv[1])
    print("OK", sum(float(p.detach().sum()) for p in encoder.parameters()))
except OSError as err:
    print("OSError", err)
"""


def _load_offline(source, cache):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent)}
    return subprocess.run([sys.executable, "-c", HUB_SCRIPT, source], env=env, capture_output=True, text=True,
                          timeout=120).stdout.strip()


def test_hub_loading_from_an_offline_cache_honours_revisions(tmp_path, model_dir):
    cache = tmp_path / "hf" / "hub"
    other = save_model(CGCNNEncoder(atom_fea_len=16, n_conv=2, out_dim=8), tmp_path / "other")
    _lay_out_hub_cache(cache, "matssl/ct-test", model_dir, "a" * 40)
    _lay_out_hub_cache(cache, "matssl/ct-test", other, "b" * 40)  # refs/main now points at "b..."

    expected_a = sum(float(p.detach().sum()) for p in load(model_dir).parameters())
    expected_b = sum(float(p.detach().sum()) for p in load(other).parameters())
    assert _load_offline("hf://matssl/ct-test", cache) == f"OK {expected_b}"
    assert _load_offline(f"hf://matssl/ct-test@{'a' * 40}", cache) == f"OK {expected_a}"

    missing = _load_offline("hf://matssl/not-cached", cache)
    assert missing.startswith("OSError") and "hf://matssl/not-cached" in missing and "HF_HUB_OFFLINE" in missing


def test_malformed_hub_address_is_refused():
    with pytest.raises(ValueError, match="hf://OWNER/REPO"):
        sources.resolve("hf://just-a-name")


def test_save_pretrained_records_checksums_and_a_changed_file_is_refused(model_dir):
    """A local directory whose files do not match its checksums.json is refused, naming the file."""
    from safetensors.torch import load_file, save_file

    manifest = json.loads((model_dir / "checksums.json").read_text())
    assert manifest == {name: sha256(model_dir / name) for name in ("config.json", "metadata.json", "model.safetensors")}
    load(model_dir)

    original = (model_dir / "model.safetensors").read_bytes()
    state = load_file(model_dir / "model.safetensors")
    state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}  # same keys and shapes: loadable
    save_file(state, model_dir / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(OSError, match=r"model\.safetensors does not match the sha256 recorded in checksums\.json"):
        load(model_dir)
    with pytest.raises(OSError, match="checksums.json"):
        sources.resolve(model_dir)
    (model_dir / "model.safetensors").write_bytes(original)

    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(config))  # same content, other bytes
    with pytest.raises(OSError, match=r"config\.json does not match the sha256"):
        load(model_dir)
    (model_dir / "checksums.json").unlink()  # a directory without a manifest claims nothing
    assert load(model_dir).config == config


def test_a_malformed_checksum_manifest_is_refused(model_dir):
    for text in ("not json", '["model.safetensors"]', '{"../model.safetensors": "00"}'):
        (model_dir / "checksums.json").write_text(text)
        with pytest.raises(OSError, match="checksums.json is not a JSON object"):
            load(model_dir)
    (model_dir / "checksums.json").write_text(json.dumps({"extra.bin": "0" * 64}))
    with pytest.raises(OSError, match="extra.bin, listed in checksums.json, not found"):
        load(model_dir)


def test_a_pickle_only_directory_is_refused_saying_only_safetensors_are_loaded(model_dir, monkeypatch):
    torch.save(load(model_dir).state_dict(), model_dir / "pytorch_model.bin")
    (model_dir / "model.safetensors").unlink()

    def never(*args, **kwargs):
        raise AssertionError("a pickle was unpickled")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(OSError, match=r"only safetensors weights are loaded, never pickles \(pytorch_model\.bin"):
        load(model_dir)


HUB_ANY_ERROR_SCRIPT = """
import sys
from matssl_featurizers import PretrainedEncoder
try:
    encoder = PretrainedEncoder.from_pretrained(sys.argv[1])
    print("OK", sum(float(p.detach().sum()) for p in encoder.parameters()))
except Exception as err:
    print(type(err).__name__ + ":", err)
"""


def _load_from_hub(source, cache, offline=True, endpoint=None):
    """Run ``load_encoder(source)`` in a fresh process (huggingface_hub reads its settings at import)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent), "HF_HUB_DISABLE_TELEMETRY": "1"})
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    return subprocess.run([sys.executable, "-c", HUB_ANY_ERROR_SCRIPT, source], env=env, capture_output=True,
                          text=True, timeout=120).stdout.strip()


def test_a_hub_snapshot_is_checked_like_a_local_directory(tmp_path, model_dir):
    """A downloaded snapshot whose tensors do not match its checksums or its config is refused."""
    from safetensors.torch import load_file, save_file

    cache = tmp_path / "hf" / "hub"
    tampered = shutil.copytree(model_dir, tmp_path / "tampered")
    state = load_file(tampered / "model.safetensors")
    save_file({k: v * 2 for k, v in state.items()}, tampered / "model.safetensors", metadata={"format": "pt"})
    _lay_out_hub_cache(cache, "matssl/tampered", tampered, "c" * 40)
    mismatched = shutil.copytree(model_dir, tmp_path / "mismatched")
    (mismatched / "checksums.json").unlink()
    config = json.loads((mismatched / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps({**config, "atom_fea_len": 32}))
    _lay_out_hub_cache(cache, "matssl/mismatched", mismatched, "d" * 40)

    out = _load_from_hub("hf://matssl/tampered", cache)
    assert out.startswith("OSError:") and "model.safetensors does not match the sha256 recorded in checksums.json" in out
    out = _load_from_hub("hf://matssl/mismatched", cache)
    assert out.startswith("ValueError:") and "config.json does not match model.safetensors" in out


def test_a_pinned_revision_missing_from_the_cache_is_not_replaced_by_main(tmp_path, model_dir):
    cache = tmp_path / "hf" / "hub"
    _lay_out_hub_cache(cache, "matssl/ct-test", model_dir, "a" * 40)
    assert _load_from_hub("hf://matssl/ct-test", cache).startswith("OK")
    out = _load_from_hub(f"hf://matssl/ct-test@{'e' * 40}", cache)
    assert out.startswith("OSError:") and f"hf://matssl/ct-test@{'e' * 40}" in out


class _RecordingHub:
    """A local HTTP server standing in for an unavailable Hub: answers 503 and records every request path."""

    def __enter__(self):
        import http.server
        import threading

        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                paths.append(self.path)
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _one_sentence(message):
    return "\n" not in message and message.endswith(".") and ". " not in message[:-1]


def test_offline_without_a_cache_is_one_sentence_and_no_request(tmp_path):
    """HF_HUB_OFFLINE=1: no request at all; Hub unreachable: one request, no retries; each one sentence."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    with _RecordingHub() as hub:
        out = _load_from_hub("hf://matssl/not-cached", cache, offline=True, endpoint=hub.url)
        assert hub.paths == [], "HF_HUB_OFFLINE=1 must not touch the network"
        assert out == ("OSError: cannot load weights from hf://matssl/not-cached: HF_HUB_OFFLINE is set and the "
                       "local Hugging Face cache has no copy of it.")
        assert _one_sentence(out.removeprefix("OSError: "))

        out = _load_from_hub("hf://matssl/not-cached", cache, offline=False, endpoint=hub.url)
        repo_requests = [p for p in hub.paths if "matssl/not-cached" in p]
        assert len(repo_requests) == 1, f"retried: {repo_requests}"
        assert out.startswith("OSError: cannot load weights from hf://matssl/not-cached: the Hub cannot be reached")
        assert _one_sentence(out.removeprefix("OSError: "))
