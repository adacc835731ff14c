"""A project whose model is the real tiny model (tests/trained.py) and whose dataset has real files, so
that exports convert, verify on validation images and calibrate int8 on training images."""

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402

from tests.predictions.conftest import api_client, fresh_model_cache, make_dataset, make_model  # noqa: E402,F401
from tests.trained import CLASSES, link_model_files, shape_png  # noqa: E402
from webapp.core import storage  # noqa: E402
from webapp.projects.models import Project  # noqa: E402

# The tiny model's own training and validation images (tests/trained.py draws them with these seeds).
TRAIN, VALIDATION = 16, 4


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path, tiny_model):
    """A storage root per test (worker subprocesses inherit it), holding the tiny model's files as
    hard links: what a test leaves behind, or removes, is its own."""
    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    link_model_files(tiny_model)
    return settings.TL_STORAGE_ROOT


def write_dataset_files(dataset) -> None:
    """The dataset's stored images: the very shapes the tiny model was trained and validated on."""
    for split, count, offset in (("train", TRAIN, 0), ("validation", VALIDATION, 500)):
        for c, name in enumerate(CLASSES):
            folder = storage.dataset_dir(dataset.pk) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{i}.png").write_bytes(shape_png(name, seed=1000 * c + i + offset))


def shapes_model(owner, tiny_model, name="Shapes"):
    project = Project.objects.create(owner=owner, name=name)
    dataset = make_dataset(project)
    write_dataset_files(dataset)
    return make_model(project, tiny_model)


@pytest.fixture
def model(alice, tiny_model):
    """The tiny VGG16 (random weights) as alice's model v1."""
    return shapes_model(alice, tiny_model)


@pytest.fixture(scope="session")
def tiny_scratch_files(tmp_path_factory):
    """The small convnet (mode scratch) trained on the same shapes: int8 quantization keeps its answers,
    where the tiny VGG16 with random weights loses them (docs/decisions.md, "Exports")."""
    from workers.ml.config import parse_config
    from workers.ml.train import train

    data = tmp_path_factory.mktemp("scratch-shapes")
    for split, count, offset in (("train", TRAIN, 0), ("validation", VALIDATION, 500)):
        for c, name in enumerate(CLASSES):
            (data / split / name).mkdir(parents=True)
            for i in range(count):
                (data / split / name / f"{i}.png").write_bytes(shape_png(name, seed=1000 * c + i + offset))
    config = {"mode": "scratch", "image_size": [32, 32], "epochs": 4, "batch_size": 8, "seed": 7}
    output = tmp_path_factory.mktemp("scratch-model") / "model"
    result = train(
        config=parse_config(config), dataset_dir=data, output_dir=output,
        cache_dir=tmp_path_factory.mktemp("scratch-features"), dataset_hash="s",
    )  # fmt: skip
    return {"path": str(output), "checksum": result.sha256, "size_bytes": result.model_bytes,
            "class_names": result.class_names, "threshold_curve": result.threshold_curve, "config": config}  # fmt: skip


@pytest.fixture
def scratch_model(alice, tiny_scratch_files):
    """The small convnet as alice's model v1 (its files hard-linked into this test's storage)."""
    target = storage.models_root() / "tiny-scratch"
    shutil.copytree(tiny_scratch_files["path"], target, copy_function=os.link)
    project = Project.objects.create(owner=alice, name="Shapes")
    write_dataset_files(make_dataset(project))
    model = make_model(project, tiny_scratch_files, path=target)
    model.experiment.__class__.objects.filter(pk=model.experiment_id).update(
        mode="scratch", backbone="scratch", config=tiny_scratch_files["config"]
    )
    model.refresh_from_db()
    return model


@pytest.fixture
def alice_api(alice):
    return api_client(alice)


@pytest.fixture
def bob_api(bob):
    return api_client(bob)


def sample_image() -> bytes:
    """A shape none of the splits holds, as a user would send it."""
    return shape_png("triangle", seed=4242)


def unzip(content: bytes, target: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        bundle.extractall(target)
    return target


def run_snippet(folder: Path, image: Path) -> dict:
    """The bundle's predict.py, as its README says to run it, with this venv's Python."""
    done = subprocess.run(
        [sys.executable, "predict.py", str(image)],
        cwd=folder,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def api_probabilities(client, model_id: int, image: bytes, class_names: list[str]) -> list[float]:
    upload = SimpleUploadedFile("photo.png", image, content_type="application/octet-stream")
    answer = client.post(f"/api/v1/models/{model_id}/predict/", {"image": [upload]}, format="multipart")
    assert answer.status_code == 200, answer.content
    probabilities = answer.json()["predictions"][0]["probabilities"]
    return [probabilities[name] for name in class_names]


def svd_model(owner, tiny_model):
    """The tiny model behind a layer whose op (Svd) neither tf2onnx nor TF Lite's builtins have."""
    import keras

    from workers.ml.hashing import file_sha256
    from workers.ml.predict import load_verified_model

    inner = load_verified_model(Path(tiny_model["path"]), tiny_model["checksum"])
    image = keras.Input((32, 32, 3))
    outer = keras.Model(image, inner(SvdProbe()(image)))
    folder = storage.models_root() / "svd"
    folder.mkdir(parents=True)
    outer.save(folder / "model.keras")
    shutil.copy(Path(tiny_model["path"]) / "model.json", folder / "model.json")
    project = Project.objects.create(owner=owner, name="Odd ops")
    write_dataset_files(make_dataset(project))
    return make_model(project, tiny_model, path=folder, checksum=file_sha256(folder / "model.keras"))


def _svd_probe():
    import keras

    @keras.saving.register_keras_serializable(package="tests_exports")
    class SvdProbe(keras.layers.Layer):
        """Adds nothing to the image, through singular values: a model the converters cannot handle."""

        def call(self, x):
            values = keras.ops.svd(keras.ops.reshape(x, (-1, 32 * 3, 32)), compute_uv=False)
            return x + 0.0 * keras.ops.reshape(keras.ops.sum(values, axis=-1), (-1, 1, 1, 1))

    return SvdProbe


SvdProbe = _svd_probe()
