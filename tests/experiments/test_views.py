import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.experiments.factories import make_dataset, make_project
from tests.trained import copy_model_files
from webapp.core import storage
from webapp.experiments.forms import PRESETS
from webapp.experiments.models import EpochMetric, Experiment, TrainedModel, TrainingJob

Status = TrainingJob.Status

EVALUATION = {
    "accuracy": 0.75,
    "labels": ["green", "red"],
    "confusion_matrix": [[3, 1], [1, 3]],
    "per_class": {
        "green": {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4},
        "red": {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4},
    },
    "confident_mistakes": [
        {"path": "validation/red/001.jpg", "true": "red", "predicted": "green", "confidence": 0.9, "probabilities": {}}
    ],
}


@pytest.fixture
def project(alice):
    return make_project(alice)


@pytest.fixture
def dataset(project):
    return make_dataset(project, n_train=2, n_val=1)


@pytest.fixture
def experiment(project, dataset, alice):
    return Experiment.objects.create(
        project=project,
        dataset=dataset,
        name="Bottleneck",
        mode="bottleneck",
        backbone="vgg16",
        config={"mode": "bottleneck", "epochs": 3, "image_size": [32, 32]},
        created_by=alice,
    )


def form_data(dataset, **overrides):
    data = {
        "name": "From the form",
        "dataset": dataset.pk,
        "mode": "bottleneck",
        "backbone": "vgg16",
        "weights": "none",
        "image_height": 32,
        "image_width": 32,
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 0.001,
        "optimizer": "rmsprop",
        "momentum": 0.9,
        "seed": 1,
        "device": "auto",
        "precision": "auto",
        "head_units": 16,
        "head_dropout": 0.1,
        "head_pooling": "flatten",
        "head_normalize": "on",
        "unfreeze": "",
        "fill_mode": "nearest",
    }
    for key in (
        "rotation_range",
        "width_shift_range",
        "height_shift_range",
        "shear_range",
        "zoom_range",
        "channel_shift_range",
        "cval",
    ):
        data[key] = 0
    data.update(overrides)
    return data


def test_the_form_offers_the_blog_presets_and_fills_from_one(client, alice, project, dataset):
    client.force_login(alice)
    url = reverse("experiments:create", args=[project.pk])
    page = client.get(url).content.decode()
    for preset in PRESETS.values():
        assert preset["label"] in page
    page = client.get(url + "?preset=blog-finetune").content.decode()
    assert 'value="Fine-tune block5"' in page and 'value="0.0001"' in page


def test_a_bad_option_is_reported_beside_its_field(client, alice, project, dataset):
    client.force_login(alice)
    response = client.post(reverse("experiments:create", args=[project.pk]), form_data(dataset, rotation_range=30))
    assert response.status_code == 200
    field = response.context["form"]["rotation_range"]
    assert "bottleneck mode computes features once" in " ".join(field.errors)
    assert not Experiment.objects.exists()


def test_the_page_lists_every_error_at_once_under_the_fields_labels(client, alice, project, dataset):
    client.force_login(alice)
    bad = form_data(
        dataset,
        mode="finetune",
        optimizer="sgd",
        epochs=0,
        batch_size="many",
        learning_rate=2,
        momentum=1,
        rotation_range=400,
        width_shift_range=1,
    )
    for name in ("weights", "head_units", "head_dropout", "head_pooling", "head_normalize"):
        bad.pop(name)  # as the page sends a fine-tune: these are disabled in finetune mode
    response = client.post(reverse("experiments:create", args=[project.pk]), bad)
    page = response.content.decode()
    summary = page[page.index('id="error-summary"') : page.index("</ul>", page.index('id="error-summary"'))]
    assert "6 problems to fix" in summary and summary.count("<li>") == 6
    for line in (
        'href="#id_epochs" data-field="id_epochs">Epochs: must be in [1, 1000], got 0',
        ">Batch size: Enter a whole number.",
        ">Learning rate: must be in (0, 1], got 2.0",
        ">Momentum: must be in [0, 1), got 1.0",
        ">Rotation range: must be in [0, 360], got 400.0",
        ">Width shift range: must be in [0, 1), got 1.0",
    ):
        assert line in summary, line
    assert "augmentation.rotation_range" not in page  # labels, not config keys
    assert response.context["form"]["rotation_range"].errors == ["must be in [0, 360], got 400.0"]
    assert not Experiment.objects.exists()


def test_fields_a_mode_does_not_read_may_be_left_out(client, alice, project, dataset):
    """The page disables what the mode does not read, so a scratch run sends no head or backbone."""
    client.force_login(alice)
    data = form_data(dataset, mode="scratch")
    for name in ("backbone", "weights", "head_units", "head_dropout", "head_pooling", "head_normalize", "momentum"):
        data.pop(name)
    response = client.post(reverse("experiments:create", args=[project.pk]), data)
    assert response.status_code == 302, response.context["form"].errors
    assert Experiment.objects.get().config["mode"] == "scratch"
    # A field the mode reads may not be left out.
    response = client.post(reverse("experiments:create", args=[project.pk]), form_data(dataset, head_units=""))
    assert response.context["form"]["head_units"].errors == ["This field is required."]


def test_a_valid_form_starts_the_experiment(
    client, alice, project, dataset, clean_broker, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("experiments:create", args=[project.pk]), form_data(dataset))
    experiment = Experiment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("experiments:detail", args=[project.pk, experiment.pk])
    assert experiment.config["head"]["units"] == 16 and experiment.jobs.get().status == Status.QUEUED


def test_the_experiment_page_polls_while_running_and_shows_the_evaluation_when_done(client, alice, project, experiment):
    client.force_login(alice)
    job = TrainingJob.objects.create(
        experiment=experiment,
        status=Status.RUNNING,
        epochs=3,
        epoch=2,
        progress=0.5,
        phase="training",
        started_at=timezone.now(),
    )
    EpochMetric.objects.create(job=job, epoch=1, loss=0.7, accuracy=0.5, val_loss=0.6, val_accuracy=0.6)
    status_url = reverse("experiments:status", args=[project.pk, experiment.pk])
    page = client.get(reverse("experiments:detail", args=[project.pk, experiment.pk])).content.decode()
    assert f'hx-get="{status_url}"' in page and "epoch 2 of 3" in page and "chart.umd.min.js" in page
    metrics = client.get(reverse("experiments:metrics", args=[project.pk, experiment.pk])).json()
    assert metrics["finished"] is False and metrics["history"][0]["val_accuracy"] == 0.6

    TrainingJob.objects.filter(pk=job.pk).update(
        status=Status.SUCCEEDED, finished_at=timezone.now(), result={"evaluation": EVALUATION, "best_epoch": 1}
    )
    partial = client.get(status_url).content.decode()
    assert "hx-get" not in partial  # polling stops once the job is finished
    assert "Confusion matrix" in partial and "validation/red/001.jpg" in partial and "75.0%" in partial
    # The runs table outside the polled block is refreshed out of band with the final status.
    runs = partial[partial.index('id="job-runs"') :]
    assert 'hx-swap-oob="morph"' in runs[:80] and '<span class="badge succeeded">succeeded</span>' in runs
    # One state everywhere: the banner is the same row's, so no stale "is queued" stays above it.
    assert "Run 1 succeeded." in partial and "is queued" not in partial


def test_cancel_and_retry_buttons_call_the_services(
    client, alice, project, experiment, clean_broker, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    job = TrainingJob.objects.create(experiment=experiment)
    client.post(reverse("experiments:job_cancel", args=[project.pk, job.pk]))
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("experiments:job_retry", args=[project.pk, job.pk]))
    assert experiment.jobs.filter(status=Status.QUEUED).count() == 1


def test_the_list_shows_status_and_best_accuracy_and_the_models_page_publishes(
    client, alice, project, experiment, tiny_model
):
    client.force_login(alice)
    job = TrainingJob.objects.create(
        experiment=experiment, status=Status.SUCCEEDED, started_at=timezone.now(), finished_at=timezone.now()
    )
    EpochMetric.objects.create(job=job, epoch=1, val_accuracy=0.875)
    model = TrainedModel.objects.create(
        project=project,
        experiment=experiment,
        job=job,
        version=1,
        path=storage.key_of(copy_model_files(tiny_model, "tiny-copy")),  # publishing loads it as serving would
        size_bytes=10,
        checksum=tiny_model["checksum"],
        class_names=["green", "red"],
        image_size=[32, 32],
        backbone="vgg16",
        metrics={"accuracy": 0.875},
    )
    page = client.get(reverse("experiments:list", args=[project.pk])).content.decode()
    assert "87.5%" in page and "succeeded" in page and "Bottleneck" in page
    assert "Publish" in client.get(reverse("experiments:models", args=[project.pk])).content.decode()
    client.post(reverse("experiments:model_publish", args=[project.pk, model.pk]))
    model.refresh_from_db()
    assert model.published
    assert (
        reverse("experiments:list", args=[project.pk])
        in client.get(reverse("projects:detail", args=[project.pk])).content.decode()
    )


def test_another_users_experiments_are_not_found(client, bob, project, experiment):
    client.force_login(bob)
    assert client.get(reverse("experiments:list", args=[project.pk])).status_code == 404
    assert client.get(reverse("experiments:detail", args=[project.pk, experiment.pk])).status_code == 404
    job = TrainingJob.objects.create(experiment=experiment)
    assert client.post(reverse("experiments:job_cancel", args=[project.pk, job.pk])).status_code == 404


def test_the_job_admin_lists_jobs_without_a_query_per_row(
    admin_client, project, experiment, django_assert_max_num_queries
):
    for _ in range(5):
        TrainingJob.objects.create(experiment=experiment, status=Status.FAILED, error="boom", log_tail="line")
    with django_assert_max_num_queries(12):
        assert admin_client.get(reverse("admin:experiments_trainingjob_changelist")).status_code == 200
    job = TrainingJob.objects.first()
    page = admin_client.get(reverse("admin:experiments_trainingjob_change", args=[job.pk])).content.decode()
    assert "boom" in page and "<pre" in page


def _finished_finetune(project, dataset, alice, *, base_accuracy):
    experiment = Experiment.objects.create(
        project=project,
        dataset=dataset,
        name="Fine-tune",
        mode="finetune",
        backbone="vgg16",
        config={"mode": "finetune", "epochs": 2, "image_size": [32, 32]},
        created_by=alice,
    )
    base = {k: v for k, v in EVALUATION.items() if k != "confident_mistakes"}
    TrainingJob.objects.create(
        experiment=experiment,
        status=Status.SUCCEEDED,
        finished_at=timezone.now(),
        result={"evaluation": EVALUATION, "base_evaluation": {**base, "accuracy": base_accuracy, "model_id": 7}},
    )
    return experiment


def test_a_fine_tune_that_lost_to_its_base_says_so_on_its_page_compare_and_api(client, alice, project, dataset):
    from rest_framework.test import APIClient

    from webapp.accounts.services import api_token_create

    experiment = _finished_finetune(project, dataset, alice, base_accuracy=0.788)
    client.force_login(alice)
    page = client.get(reverse("experiments:status", args=[project.pk, experiment.pk])).content.decode()
    assert "\u22123.8 points against its base (78.8% \u2192 75.0%)" in page
    assert "fine-tuning did not improve on the base model" in page
    compare = client.get(reverse("experiments:compare", args=[project.pk]), {"experiment": experiment.pk})
    assert "\u22123.8 points (no gain)" in compare.content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=alice)[1]}")
    body = api.get(f"/api/v1/experiments/{experiment.pk}/").json()
    assert body["versus_base"] == {
        "base_model": 7,
        "base_accuracy": 0.788,
        "accuracy": 0.75,
        "points": -3.8,
        "improved": False,
        "summary": "\u22123.8 points against its base (78.8% \u2192 75.0%): fine-tuning did not improve on the "
        "base model; the base model is at least as good",
    }


def test_a_fine_tune_that_beat_its_base_shows_the_gain(client, alice, project, dataset):
    experiment = _finished_finetune(project, dataset, alice, base_accuracy=0.5)
    client.force_login(alice)
    page = client.get(reverse("experiments:status", args=[project.pk, experiment.pk])).content.decode()
    assert "+25.0 points against its base (50.0% \u2192 75.0%)" in page
    assert "did not improve" not in page


def test_a_bottleneck_experiment_has_no_base_to_compare_with(client, alice, project, experiment):
    TrainingJob.objects.create(experiment=experiment, status=Status.SUCCEEDED, result={"evaluation": EVALUATION})
    client.force_login(alice)
    page = client.get(reverse("experiments:status", args=[project.pk, experiment.pk])).content.decode()
    assert "against its base" not in page


def test_the_page_shows_the_split_the_interval_and_the_calibration(client, alice, project, experiment):
    evaluation = {
        **EVALUATION,
        "split": "test",
        "n": 8,
        "accuracy_ci95": [0.409, 0.929],
        "macro_f1": 0.75,
        "macro_f1_ci95": [0.4, 1.0],
        "balanced_accuracy": 0.75,
        "per_class_recall": [
            {"class": "red", "recall": 0.5, "ci95": [0.15, 0.85], "support": 4},
            {"class": "green", "recall": 1.0, "ci95": [0.51, 1.0], "support": 4},
        ],
        "per_class": {
            "green": {"precision": 0.67, "recall": 1.0, "f1": 0.8, "support": 4},
            "red": {"precision": 1.0, "recall": 0.5, "f1": 0.67, "support": 4},
        },
        "calibration": {
            "temperature": 1.8,
            "ece_before": 0.21,
            "ece_after": 0.04,
            "reliability_before": [{"lo": 0.9, "hi": 1.0, "count": 8, "confidence": 0.97, "accuracy": 0.75}],
            "reliability_after": [{"lo": 0.7, "hi": 0.8, "count": 8, "confidence": 0.78, "accuracy": 0.75}],
        },
    }
    TrainingJob.objects.create(experiment=experiment, status=Status.SUCCEEDED, result={"evaluation": evaluation})
    client.force_login(alice)
    page = client.get(reverse("experiments:status", args=[project.pk, experiment.pk])).content.decode()
    assert "(95% interval 40.9%–92.9%)" in page and "test (held out: nothing was chosen on it) images" in page
    assert "No test split" not in page
    assert "T = 1.800" in page and "21.0% before, <strong>4.0%</strong> after" in page
    assert page.index("<td>red</td>") < page.index("<td>green</td>")  # worst recall first
    assert "15.0%–85.0%" in page
    # The reliability diagram (drawn by static/js/reliability.js) plots the table's bins.
    chart = re.search(r'<script id="reliability-data" type="application/json">(.*?)</script>', page)
    assert 'id="reliability-chart"' in page and json.loads(chart.group(1)) == {
        "before": [{"x": 0.97, "y": 0.75, "n": 8}],
        "after": [{"x": 0.78, "y": 0.75, "n": 8}],
    }
    detail = client.get(reverse("experiments:detail", args=[project.pk, experiment.pk])).content.decode()
    assert "js/reliability.js" in detail and 'id="reliability-chart"' in detail


def test_a_validation_only_number_is_labelled_optimistic(client, alice, project, experiment):
    TrainingJob.objects.create(experiment=experiment, status=Status.SUCCEEDED, result={"evaluation": EVALUATION})
    client.force_login(alice)
    page = client.get(reverse("experiments:status", args=[project.pk, experiment.pk])).content.decode()
    assert "validation (used to choose the epoch: optimistic)" in page and "No test split" in page
    assert "reliability-chart" not in page  # no calibration recorded: no diagram


def test_the_lists_refresh_only_while_a_run_is_active(client, alice, project, experiment):
    client.force_login(alice)
    job = TrainingJob.objects.create(experiment=experiment, status=Status.RUNNING, progress=0.5)
    rows_url = reverse("experiments:list", args=[project.pk]) + "?rows=1"
    models_url = reverse("experiments:models", args=[project.pk]) + "?rows=1"
    rows = client.get(rows_url).content.decode()
    assert 'id="experiment-rows"' in rows[:200]
    assert f'hx-get="{rows_url}"' in rows and "<html" not in rows and "50%" in rows
    assert f'hx-get="{models_url}"' in client.get(models_url).content.decode()
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED, progress=1.0)
    rows = client.get(rows_url).content.decode()
    assert "hx-get" not in rows and "badge succeeded" in rows and "50%" not in rows
    assert "hx-get" not in client.get(models_url).content.decode()
