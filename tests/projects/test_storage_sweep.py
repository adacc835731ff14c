"""The hourly sweep removes what nothing owns once it is old enough, and nothing else."""

import os
import time
import uuid

from tests.experiments.factories import make_dataset
from tests.projects.conftest import files_under
from webapp.core import storage as store
from webapp.projects.models import Dataset, UploadSession
from webapp.projects.tasks import sweep_storage


def _write(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _age_everything(root, seconds: float) -> None:
    then = time.time() - seconds
    for path in root.rglob("*"):
        os.utime(path, (then, then))


def test_the_sweep_removes_what_nothing_owns_and_keeps_the_rest(storage, project, alice, settings):
    ready = make_dataset(project)
    failed = Dataset.objects.create(project=project, version=2, source="zip", status="failed")
    session = UploadSession.objects.create(project=project, created_by=alice)
    live_hash = store.features_dir(ready.feature_hash)
    kept = [
        _write(live_hash / ("a" * 64) / "train.npy"),  # features of a dataset that exists
        _write(store.dataset_upload_dir(failed.pk) / "archive.zip"),  # kept for a retry
        _write(store.upload_session_dir(session.pk) / "files" / "a.jpg"),  # a folder upload under way
        _write(store.predictions_dir(project.pk) / "2026-01-01" / "1-0.png"),
        _write(store.models_root() / "5" / "model.keras"),  # models are not this sweep's business
    ]
    orphans = [
        _write(store.features_dir("f" * 64) / ("b" * 64) / "train.npy"),  # no dataset has this content
        _write(store.features_root() / ("c" * 64) / "meta.json"),  # an entry of the old flat layout
        _write(live_hash / f".{'d' * 64}.tmp-1234" / "train.npy"),  # a killed extraction's temp entry
        _write(store.dataset_upload_dir(999) / "archive.zip"),  # a web process killed mid-upload
        _write(store.dataset_upload_dir(ready.pk) / "archive.zip"),  # missed when it became ready
        _write(store.upload_session_dir(uuid.uuid4()) / "files" / "a.jpg"),
        _write(store.dataset_dir(998) / "train" / "cats" / "0.jpg"),
        _write(store.predictions_dir(997) / "2026-01-01" / "1-0.png"),
        _write(store.staging_root() / "ingest-996-abc" / "raw" / "a.jpg"),
    ]
    assert not any(sweep_storage().values()), "nothing is removed while it is young"

    _age_everything(storage, settings.TL_SWEEP_AFTER_SECONDS + 60)
    removed = {kind: names for kind, names in sweep_storage().items() if names}

    assert removed == {
        "staging": ["ingest-996-abc"],
        "features": [
            f"features/{'c' * 64}",
            f"features/{'f' * 64}",
            f"features/{ready.feature_hash}/.{'d' * 64}.tmp-1234",
        ],
        "uploads": [f"uploads/dataset-{ready.pk}", "uploads/dataset-999", f"uploads/{orphans[5].parent.parent.name}"],
        "datasets": ["datasets/998"],
        "predictions": ["predictions/997"],
    }
    images = [f"datasets/{ready.pk}/{f}" for f in files_under(store.dataset_dir(ready.pk))]
    assert files_under(storage) == sorted([p.relative_to(storage).as_posix() for p in kept] + images)
