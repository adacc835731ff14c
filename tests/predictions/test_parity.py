"""What a user is shown about a model is what the endpoint does: same pixels, same answers.

A dataset of mixed formats goes through the real ingest, a model is trained by the real job
runner (with its round trip), published through the API, and every file of its test split is sent to
predict over HTTP, as multipart and as base64: the answers must add up to
exactly the evaluation's accuracy and confusion matrix.
"""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.predictions.conftest import CLASSES, shape_png
from webapp.core import storage
from webapp.experiments import services as experiment_services
from webapp.experiments.models import TrainingJob
from webapp.predictions.services import images_check
from webapp.projects.datasets import dataset_import_path
from webapp.projects.models import Project
from workers.ml.data import Split, make_dataset

pytestmark = pytest.mark.slow


def _picture(shape: str, seed: int, size=40) -> Image.Image:
    """The tiny model's shapes, as a picture to save in every format."""
    with Image.open(io.BytesIO(shape_png(shape, seed, size=size))) as image:
        return image.convert("RGB")


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# Every kind of file the issue names; the EXIF one is stored sideways and shown upright.
ENCODINGS = {
    "jpeg": lambda im: _save(im, "JPEG", quality=90),
    "progressive.jpg": lambda im: _save(im, "JPEG", quality=85, progressive=True),
    "exif.jpg": lambda im: _save(im.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=_exif(6)),
    "cmyk.jpg": lambda im: _save(im.convert("CMYK"), "JPEG", quality=90),
    "gray.jpg": lambda im: _save(im.convert("L"), "JPEG", quality=90),
    "palette.png": lambda im: _save(im.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG"),
    "alpha.png": lambda im: _save(im.convert("RGBA"), "PNG"),
    "gray.png": lambda im: _save(im.convert("L"), "PNG"),
    "16bit.png": lambda im: _save(Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257), "PNG"),
    "gif": lambda im: _save(im.convert("P"), "GIF"),
    "bmp": lambda im: _save(im, "BMP"),
    "webp": lambda im: _save(im, "WEBP", quality=85),
}


@pytest.fixture
def uploaded(tmp_path, settings):
    """A folder of class folders in every format (the user's files), keyed by relative path."""
    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    files, kinds = {}, sorted(ENCODINGS)
    for c, shape in enumerate(CLASSES):
        for split, count in (("train", 14), ("validation", 8), ("test", 10)):
            for i in range(count):
                kind = kinds[(i + c) % len(kinds)]
                seed = 10_000 * c + i + {"train": 0, "validation": 5_000, "test": 7_000}[split]
                stem = kind.split(".")[0]
                files[f"{split}/{shape}/{shape}-{i}-{stem}.{kind.rsplit('.', 1)[-1].replace('jpeg', 'jpg')}"] = (
                    ENCODINGS[kind](_picture(shape, seed))
                )
    root = tmp_path / "upload"
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root, files


def test_ingest_keeps_the_users_bytes_and_predict_sees_the_pixels_evaluation_saw(alice, uploaded):
    root, files = uploaded
    project = Project.objects.create(owner=alice, name="Formats")
    dataset = dataset_import_path(project=project, path=root, user=alice)
    assert dataset.status == "ready", dataset.error
    stored = storage.dataset_dir(dataset.pk)
    images = [p for split in ("train", "validation", "test") for p in (stored / split).glob("*/*")]
    by_stem = {p.relative_to(stored).with_suffix("").as_posix(): p for p in images}
    assert len(by_stem) == len(files)
    for relative, data in files.items():
        path = by_stem[relative.rsplit(".", 1)[0]]
        assert path.read_bytes() == data, relative  # nothing re-encoded
        split = Split([str(path)], np.zeros(1, np.int32), [relative])
        (evaluated,) = list(make_dataset(split, (32, 32), 1, with_labels=False).unbatch().as_numpy_iterator())
        (served,) = images_check(inputs=[("image[0]", data)], image_size=(32, 32))
        assert np.array_equal(evaluated, served.array.astype(np.float32)), relative


@pytest.mark.django_db(transaction=True)
def test_http_predict_on_every_test_file_reproduces_the_evaluation_exactly(
    alice, alice_api, uploaded, clean_broker, fresh_model_cache
):
    root, files = uploaded
    project = Project.objects.create(owner=alice, name="Formats")
    dataset = dataset_import_path(project=project, path=root, user=alice)
    config = {"mode": "bottleneck", "weights": "none", "image_size": [32, 32], "epochs": 8, "batch_size": 8,
              "head": {"units": 32}, "seed": 3}  # fmt: skip
    experiment = experiment_services.experiment_create(
        project=project, dataset=dataset, config=config, name="parity", user=alice
    )
    job = experiment.jobs.get()
    assert experiment_services.training_job_run(job_id=job.pk, worker_hostname="test") == "succeeded"
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.SUCCEEDED
    assert job.result["round_trip"]["max_abs_diff"] <= 1e-5
    evaluation = job.result["evaluation"]
    assert evaluation["accuracy"] > 0.5  # it learned something, so the matrix is not one column

    model = job.model
    published = alice_api.post(f"/api/v1/models/{model.pk}/publish/")
    assert published.status_code == 200, published.content

    assert (evaluation["split"], evaluation["n"]) == ("test", 30)  # the uploaded test/ folder, scored once
    validation = sorted(k for k in files if k.startswith("test/"))
    labels = evaluation["labels"]
    for transport in ("multipart", "json"):
        matrix = np.zeros((len(labels), len(labels)), np.int64)
        for start in range(0, len(validation), 8):
            batch = validation[start : start + 8]
            if transport == "multipart":
                body = {"image": [io.BytesIO(files[k]) for k in batch]}
                for handle, name in zip(body["image"], batch, strict=True):
                    handle.name = name.rsplit("/", 1)[-1]
                response = alice_api.post(f"/api/v1/projects/{project.pk}/predict/", body, format="multipart")
            else:
                body = {"instances": [{"b64": base64.b64encode(files[k]).decode()} for k in batch]}
                response = alice_api.post(f"/api/v1/projects/{project.pk}/predict/", body, format="json")
            assert response.status_code == 200, response.content
            for name, prediction in zip(batch, response.json()["predictions"], strict=True):
                matrix[labels.index(name.split("/")[1]), labels.index(prediction["label"])] += 1
        assert matrix.tolist() == evaluation["confusion_matrix"], transport
        assert np.trace(matrix) / matrix.sum() == pytest.approx(evaluation["accuracy"], abs=0), transport
