import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workers.ml.data import list_classes, list_split, make_dataset
from workers.ml.errors import MLError
from workers.ml.predict import LoadedModel

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loaded(bottleneck_run):
    result, _ = bottleneck_run
    return LoadedModel.load(result.model_dir, expected_sha256=result.sha256)


def validation_files(dataset_dir):
    return list_split(dataset_dir, "validation", list_classes(dataset_dir))


def test_it_predicts_exactly_what_the_validation_pipeline_gives(loaded, three_class_dir):
    split = validation_files(three_class_dir)
    images = [Path(p).read_bytes() for p in split.paths]
    served = loaded.predict(images)
    pipeline = np.concatenate(
        [
            np.asarray(loaded._model(x, training=False))
            for x in make_dataset(split, loaded.image_size, 8, with_labels=False)
        ]
    )
    assert served.shape == (30, 3)
    np.testing.assert_allclose(served, pipeline, atol=1e-6)
    np.testing.assert_allclose(served.sum(axis=1), 1, atol=1e-5)


def test_it_reloads_in_a_fresh_process_and_predicts_the_same(loaded, bottleneck_run, three_class_dir):
    result, _ = bottleneck_run
    paths = validation_files(three_class_dir).paths[::5]
    code = (
        "import json, sys\nfrom pathlib import Path\n"
        "from workers.ml.predict import LoadedModel\n"
        "m = LoadedModel.load(Path(sys.argv[1]), expected_sha256=sys.argv[2])\n"
        "print(json.dumps(m.predict([Path(p).read_bytes() for p in sys.argv[3:]]).tolist()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(result.model_dir), result.sha256, *paths],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    fresh = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    here = loaded.predict([Path(p).read_bytes() for p in paths])
    np.testing.assert_allclose(fresh, here, atol=1e-5)


def test_it_refuses_a_model_whose_checksum_does_not_match(bottleneck_run):
    result, _ = bottleneck_run
    with pytest.raises(MLError, match="checksum"):
        LoadedModel.load(result.model_dir, expected_sha256="0" * 64)


def test_it_treats_arrays_like_decoded_bytes(loaded):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    np.testing.assert_allclose(loaded.predict([array]), loaded.predict([buf.getvalue()]), atol=1e-6)


def test_it_rejects_undecodable_bytes(loaded):
    with pytest.raises(MLError, match="not an image"):
        loaded.predict([b"not an image"])


def test_it_predicts_the_same_from_several_threads(loaded, three_class_dir):
    images = [Path(p).read_bytes() for p in validation_files(three_class_dir).paths[:6]]
    expected = loaded.predict(images)
    results, errors = [], []

    def work():
        try:
            results.append(loaded.predict(images))
        except Exception as exc:  # noqa: BLE001  reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)
