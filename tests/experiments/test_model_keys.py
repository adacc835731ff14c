"""Model rows hold storage keys, not absolute paths: the storage root can move under them."""

import importlib

import pytest
from django.apps import apps
from django.db import connection

from tests.experiments.factories import make_dataset, make_project
from webapp.core import storage
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob


@pytest.fixture
def model_row(alice):
    project = make_project(alice)
    experiment = Experiment.objects.create(
        project=project, dataset=make_dataset(project, n_train=1, n_val=1), name="e", mode="bottleneck", config={}
    )
    job = TrainingJob.objects.create(experiment=experiment, status=TrainingJob.Status.SUCCEEDED)
    return TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=1, path="models/5", size_bytes=1, checksum="0" * 64,
        class_names=["a", "b"], image_size=[32, 32], backbone="vgg16",
    )  # fmt: skip


def test_a_key_resolves_under_the_current_root(model_row, settings, tmp_path):
    assert model_row.files_dir == storage.storage_root() / "models" / "5"
    settings.TL_STORAGE_ROOT = tmp_path / "moved"
    assert model_row.files_dir == tmp_path / "moved" / "models" / "5"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside", "models/../../x", ""])
def test_it_refuses_keys_that_leave_the_root(bad):
    with pytest.raises(ValueError):
        storage.path_of(bad)


def test_it_refuses_to_make_a_key_of_a_path_outside_the_root(tmp_path):
    with pytest.raises(ValueError):
        storage.key_of(tmp_path / "elsewhere")
    assert storage.key_of(storage.model_dir(9)) == "models/9"


def test_the_migration_turns_absolute_paths_into_keys(model_row):
    migration = importlib.import_module("webapp.experiments.migrations.0003_model_path_is_a_storage_key")
    TrainedModel.objects.filter(pk=model_row.pk).update(path=str(storage.model_dir(5)))
    migration.to_keys(apps, connection.schema_editor())
    model_row.refresh_from_db()
    assert model_row.path == "models/5"
    TrainedModel.objects.filter(pk=model_row.pk).update(path="/old/disk/storage/models/5")  # the root moved since
    migration.to_keys(apps, connection.schema_editor())
    model_row.refresh_from_db()
    assert model_row.path == "models/5"
    migration.to_paths(apps, connection.schema_editor())
    model_row.refresh_from_db()
    assert model_row.path == str(storage.storage_root() / "models" / "5")
