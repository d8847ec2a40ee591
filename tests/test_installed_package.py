"""The installed package, not this source tree: a package-data pattern missing from pyproject.toml would leave
the wheel without weights. CI installs the project as a regular wheel (``pip install ".[test]"``), so this
test runs there against exactly what users get."""

import json
import os
import subprocess
import sys

SMOKE = """
import gzip, json, sys, warnings
from importlib import metadata
from pathlib import Path
warnings.simplefilter("ignore")
import matssl_featurizers
from matssl_featurizers import CrysAtomFeaturizer, SSLStructureFeaturizer, list_models
from matssl_featurizers.hybrid import PRESETS, HybridStructureFeaturizer
from matssl_featurizers.bundled import bundled_root
from pymatgen.core import Structure
package = Path(matssl_featurizers.__file__).parent
assert not (Path.cwd() / "matssl_featurizers").exists()
structure = Structure.from_str(json.loads(gzip.open(sys.argv[1], "rt").readline())["cif"], fmt="cif")
lengths = {m: len(SSLStructureFeaturizer(m).featurize(structure)) for m in list_models().index}
presets = {p: len(HybridStructureFeaturizer.from_preset(p).featurize(structure)) for p in PRESETS}
files = metadata.files("matssl-featurizers") or []
shipped = sorted(str(f) for f in files if "/models/" in str(f))
editable = not any(str(f).startswith("matssl_featurizers/") for f in files)
print(json.dumps({"package": str(package), "lengths": lengths, "presets": presets,
                  "crysatom": len(CrysAtomFeaturizer().featurize(structure.composition)),
                  "shipped": shipped, "editable": editable,
                  "models": sorted(str(p.relative_to(bundled_root().parent)) for p in bundled_root().rglob("*") if p.is_file())}))
"""


def test_the_installed_package_carries_and_loads_every_bundled_model(tmp_path):
    from tests.conftest import STRUCTURES_FILE

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", SMOKE, str(STRUCTURES_FILE)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["lengths"] and all(n > 0 for n in found["lengths"].values())
    assert found["presets"] and all(n > 0 for n in found["presets"].values())
    assert found["crysatom"] > 0
    assert {"models/masked-denoising/metadata.json", "models/masked-denoising/config.json"} <= set(found["models"])
    if not found["editable"]:  # a wheel: its RECORD must list every file of the models folder
        assert {f"matssl_featurizers/{m}" for m in found["models"]} <= set(found["shipped"])
