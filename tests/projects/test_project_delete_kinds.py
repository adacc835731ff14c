"""Deleting a project also removes the kinds of file the end-to-end walk does not make: the checkpoints
its runs kept and its exports (tests/projects/test_project_delete.py walks the rest)."""

import hashlib

import pytest
from rest_framework.test import APIClient

from tests.experiments.factories import add_export, make_dataset, make_project, make_run
from tests.projects.conftest import files_under
from webapp.experiments.models import TrainingJob

pytestmark = pytest.mark.django_db


def _snapshot(root) -> dict[str, str]:
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in files_under(root)}


def _project_with_every_kind(owner, name, seed):
    project = make_project(owner, name)
    dataset = make_dataset(project, seed=seed)
    stopped = make_run(project, dataset, name="stopped", status=TrainingJob.Status.FAILED)  # its checkpoint stays
    done = make_run(project, dataset, name="done")
    export = add_export(done.models.get())
    job = stopped.jobs.get()
    return project, [f"checkpoints/{job.pk}/", f"models/{done.models.get().pk}/", f"exports/{export.pk}/"]


def test_deleting_a_project_removes_its_kept_checkpoints_and_exports(storage, alice, bob):
    _project_with_every_kind(bob, "Bob's", seed=3)
    bobs_files = _snapshot(storage)
    project, folders = _project_with_every_kind(alice, "Mine", seed=1)
    owned = set(files_under(storage)) - set(bobs_files)
    for folder in folders:
        assert any(f.startswith(folder) for f in owned), f"nothing was written under {folder}"

    client = APIClient()
    client.force_authenticate(alice)
    assert client.delete(f"/api/v1/projects/{project.pk}/").status_code == 204

    assert _snapshot(storage) == bobs_files, "a file of the deleted project is left, or one of Bob's changed"
