"""A model's confidence threshold: the service, and the models page's slider that chooses it."""

import json
import re

import pytest
from django.urls import reverse

from tests.experiments.factories import make_dataset, make_project
from webapp.core.errors import Conflict, ServiceError
from webapp.experiments import thresholds
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob

pytestmark = pytest.mark.django_db

# Validation images, most confident first: [confidence, correct].
CURVE = [[0.99, 1.0], [0.95, 1.0], [0.9, 0.0], [0.8, 1.0], [0.8, 1.0], [0.6, 0.0], [0.5, 1.0], [0.4, 0.0]]


@pytest.fixture
def project(alice):
    return make_project(alice)


def make_trained_model(project, *, curve=CURVE, threshold=None, published=False) -> TrainedModel:
    """A model's rows as a succeeded job leaves them (no files: nothing here loads it)."""
    dataset = project.datasets.first() or make_dataset(project, n_train=1, n_val=1)
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name="Shapes", mode="bottleneck", backbone="vgg16", config={}
    )
    job = TrainingJob.objects.create(
        experiment=experiment,
        status=TrainingJob.Status.SUCCEEDED,
        result={} if curve is None else {"threshold_curve": curve},
    )
    return TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=project.models.count() + 1, path="models/0",
        size_bytes=1, checksum="0" * 64, class_names=["green", "red"], image_size=[32, 32], backbone="vgg16",
        threshold=threshold, published=published,
    )  # fmt: skip


# --- the service ----------------------------------------------------------------------------


def test_it_stores_a_threshold_and_measures_it_on_validation(project):
    model = thresholds.trained_model_threshold_set(model=make_trained_model(project), threshold=0.8)
    model = TrainedModel.objects.get(pk=model.pk)
    assert model.threshold == 0.8
    assert thresholds.threshold_effect(model) == {
        "threshold": 0.8, "accepted": 5, "coverage": 5 / 8, "precision": 4 / 5, "recall": 4 / 8,
    }  # fmt: skip


def test_it_clears_a_threshold(project):
    model = make_trained_model(project, threshold=0.8)
    thresholds.trained_model_threshold_set(model=model, threshold=None)
    assert TrainedModel.objects.get(pk=model.pk).threshold is None
    assert thresholds.threshold_effect(model) is None


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan"), float("inf"), "0.5", True])
def test_it_refuses_a_threshold_that_is_not_a_fraction(project, value):
    model = make_trained_model(project, threshold=0.5)
    with pytest.raises(ServiceError) as refused:
        thresholds.trained_model_threshold_set(model=model, threshold=value)
    assert refused.value.field == "threshold"
    assert TrainedModel.objects.get(pk=model.pk).threshold == 0.5


def test_it_chooses_the_lowest_threshold_reaching_a_target_precision(project):
    model = make_trained_model(project)
    assert thresholds.trained_model_threshold_for_precision(model=model, target=0.8).threshold == 0.8
    assert thresholds.trained_model_threshold_for_precision(model=model, target=0.6).threshold == 0.4
    assert TrainedModel.objects.get(pk=model.pk).threshold == 0.4


def test_it_names_the_best_precision_when_the_target_is_out_of_reach(project):
    model = make_trained_model(project, curve=[[0.9, 0.0], [0.7, 1.0], [0.7, 0.0], [0.5, 1.0]], threshold=0.3)
    with pytest.raises(Conflict) as refused:
        thresholds.trained_model_threshold_for_precision(model=model, target=0.75)
    # A threshold of 0.7 accepts both images at 0.7 (1 of 3 right); 0.5 gets 2 of 4.
    assert str(refused.value).endswith("the most is 50.0%, at threshold 50.0%.")
    assert TrainedModel.objects.get(pk=model.pk).threshold == 0.3


def test_a_model_trained_before_curves_were_kept_has_no_effect_and_no_target(project):
    model = make_trained_model(project, curve=None, threshold=0.7)
    assert thresholds.validation_curve(model) is None and thresholds.threshold_effect(model) is None
    with pytest.raises(Conflict, match="has no validation curve"):
        thresholds.trained_model_threshold_for_precision(model=model, target=0.9)


# --- the models page ------------------------------------------------------------------------


def _models_page(client, project) -> str:
    response = client.get(reverse("experiments:models", args=[project.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_models_page_embeds_each_curve_beside_a_labelled_slider(client, alice, project):
    model = make_trained_model(project, threshold=0.9)
    client.force_login(alice)
    page = _models_page(client, project)
    box = page[page.index(f'id="threshold-{model.pk}"') :]
    box = box[: box.index("</details>")]
    curve = re.search(r'<script type="application/json">(.*?)</script>', box, re.S).group(1)
    assert json.loads(curve) == CURVE
    assert f'<label for="threshold-range-{model.pk}">Confidence threshold<span class="sr-only"> of model v1' in box
    assert re.search(r'<input type="range" [^>]*name="threshold" min="0" max="100" step="any" value="90"', box)
    assert f'id="threshold-figures-{model.pk}" class="threshold-figures" aria-live="polite"' in box
    assert "Target precision (%)" in box
    assert "Saved threshold 90.0%: precision 66.7%, recall 25.0%, coverage 37.5% on validation." in box
    assert "Remove threshold" in box
    assert f'href="#threshold-{model.pk}">90.0%</a>' in page  # the table's Threshold column


def test_the_models_page_says_when_a_model_has_no_curve(client, alice, project):
    make_trained_model(project, curve=None)
    client.force_login(alice)
    page = _models_page(client, project)
    assert "trained before TransferLab kept its validation curve" in page
    assert 'type="application/json"' not in page and "Target precision" not in page
    assert "No threshold saved: every prediction is accepted." in page


def test_saving_the_slider_stores_its_threshold(client, alice, project):
    model = make_trained_model(project)
    client.force_login(alice)
    url = reverse("experiments:model_threshold", args=[project.pk, model.pk])
    response = client.post(url, {"threshold": "91.2345"})
    assert response.status_code == 302 and response.url.endswith(f"/models/#threshold-{model.pk}")
    model.refresh_from_db()
    assert model.threshold == 0.912345
    page = client.get(response.url).content.decode()
    assert "Model v1 now accepts predictions from 91.2% confidence" in page

    client.post(url, {"threshold": "91.2345", "clear": "1"})
    model.refresh_from_db()
    assert model.threshold is None


@pytest.mark.parametrize("value", ["", "abc", "-1", "100.5", "nan"])
def test_the_page_refuses_a_threshold_that_is_not_a_percentage(client, alice, project, value):
    model = make_trained_model(project, threshold=0.5)
    client.force_login(alice)
    response = client.post(reverse("experiments:model_threshold", args=[project.pk, model.pk]), {"threshold": value})
    page = client.get(response.url).content.decode()
    assert "The threshold is a percentage from 0 to 100" in page
    model.refresh_from_db()
    assert model.threshold == 0.5


def test_another_users_model_threshold_is_not_found(client, bob, project):
    model = make_trained_model(project)
    client.force_login(bob)
    response = client.post(reverse("experiments:model_threshold", args=[project.pk, model.pk]), {"threshold": "90"})
    assert response.status_code == 404
    model.refresh_from_db()
    assert model.threshold is None
