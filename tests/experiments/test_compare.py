import pytest
from django.urls import reverse

from webapp.experiments.compare import config_diff, flatten_config, format_value
from webapp.experiments.models import EpochMetric, Experiment, TrainingJob

from .factories import make_dataset, make_project

BASE = {
    "mode": "bottleneck",
    "image_size": [150, 150],
    "epochs": 50,
    "head": {"units": 256, "dropout": 0.5},
    "augmentation": {"rotation_range": 0.0, "horizontal_flip": False},
}


def _with(**changes):
    config = {**BASE, "head": dict(BASE["head"]), "augmentation": dict(BASE["augmentation"])}
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = config
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return config


def test_it_flattens_nested_keys_with_dots_and_keeps_lists_whole():
    assert flatten_config(BASE) == {
        "mode": "bottleneck",
        "image_size": [150, 150],
        "epochs": 50,
        "head.units": 256,
        "head.dropout": 0.5,
        "augmentation.rotation_range": 0.0,
        "augmentation.horizontal_flip": False,
    }


def test_it_lists_only_the_keys_that_differ():
    rows = config_diff([BASE, _with(augmentation__rotation_range=40), _with(epochs=10)])
    assert rows == [
        {"key": "augmentation.rotation_range", "values": [0.0, 40, 0.0]},
        {"key": "epochs", "values": [50, 50, 10]},
    ]


def test_it_finds_no_differences_between_equal_configs():
    assert config_diff([BASE, _with()]) == []
    assert config_diff([BASE]) == []
    assert config_diff([]) == []


def test_it_treats_equal_numbers_as_equal_but_not_booleans():
    assert config_diff([{"a": 1}, {"a": 1.0}]) == []
    assert config_diff([{"a": True}, {"a": 1}]) == [{"key": "a", "values": [True, 1]}]


def test_it_compares_lists_by_value():
    assert config_diff([BASE, _with(image_size=[150, 150])]) == []
    assert config_diff([BASE, _with(image_size=[224, 224])]) == [
        {"key": "image_size", "values": [[150, 150], [224, 224]]}
    ]


def test_it_shows_a_key_one_config_lacks_as_none():
    rows = config_diff([BASE, {**BASE, "early_stopping": {"patience": 3}}])
    assert rows == [{"key": "early_stopping.patience", "values": [None, 3]}]


def test_it_tells_a_null_value_from_a_missing_key():
    assert config_diff([{"rescale": None}, {}]) == [{"key": "rescale", "values": [None, None]}]


def test_it_formats_values_for_the_table():
    assert format_value("vgg16") == "vgg16"
    assert format_value([32, 32]) == "[32, 32]"
    assert format_value(False) == "false"
    assert format_value(None) == "—"


# --- the page ------------------------------------------------------------------------------------


def _experiment(project, dataset, name, config, *, val_accuracy):
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name=name, mode="bottleneck", backbone="vgg16", config=config
    )
    job = TrainingJob.objects.create(
        experiment=experiment,
        status=TrainingJob.Status.SUCCEEDED,
        epochs=2,
        result={"best_epoch": 2, "evaluation": {"accuracy": val_accuracy}},
    )
    for epoch, scale in ((1, 0.5), (2, 1.0)):
        EpochMetric.objects.create(
            job=job, epoch=epoch, loss=1 - scale / 2, accuracy=scale * 0.9, val_loss=1.1 - scale / 2,
            val_accuracy=scale * val_accuracy,
        )  # fmt: skip
    return experiment


@pytest.mark.django_db
def test_it_shows_the_differences_metrics_and_curve_data_of_the_picked_experiments(client, alice):
    project = make_project(alice)
    dataset = make_dataset(project, n_train=1, n_val=1)
    first = _experiment(project, dataset, "plain", BASE, val_accuracy=0.75)
    second = _experiment(project, dataset, "rotated", _with(augmentation__rotation_range=40), val_accuracy=0.875)
    _experiment(project, dataset, "not picked", _with(epochs=3), val_accuracy=0.5)
    client.force_login(alice)

    url = reverse("experiments:compare", args=[project.pk])
    response = client.get(url, {"experiment": [first.pk, second.pk]})

    assert response.status_code == 200
    page = response.content.decode()
    assert [row["key"] for row in response.context["diff"]] == ["augmentation.rotation_range"]
    assert [s["name"] for s in response.context["series"]] == ["plain", "rotated"]
    assert [len(s["history"]) for s in response.context["series"]] == [2, 2]
    assert [c["metrics"]["eval_accuracy"] for c in response.context["columns"]] == [0.75, 0.875]
    assert "augmentation.rotation_range" in page and "87.5%" in page
    assert 'id="compare-series"' in page
    assert page.count('type="checkbox"') == 3


@pytest.mark.django_db
def test_it_asks_to_pick_experiments_when_none_are_picked(client, alice):
    project = make_project(alice)
    client.force_login(alice)
    response = client.get(reverse("experiments:compare", args=[project.pk]))
    assert response.status_code == 200
    assert response.context["columns"] == []
    assert "compare-series" not in response.content.decode()


@pytest.mark.django_db
def test_it_hides_other_users_projects_and_experiments(client, alice, bob):
    mine = make_project(alice)
    theirs = make_project(bob, name="Theirs")
    their_experiment = _experiment(theirs, make_dataset(theirs, n_train=1, n_val=1), "secret", BASE, val_accuracy=1)
    client.force_login(alice)
    assert client.get(reverse("experiments:compare", args=[theirs.pk])).status_code == 404
    response = client.get(reverse("experiments:compare", args=[mine.pk]), {"experiment": their_experiment.pk})
    assert response.status_code == 200
    assert response.context["columns"] == []


def _scored(experiment, truth, predicted, images="same-images"):
    job = experiment.jobs.get()
    job.result = {**job.result, "scored": {"split": "test", "images": images, "truth": truth, "predicted": predicted}}
    job.save(update_fields=["result"])


@pytest.mark.django_db
def test_it_says_whether_two_experiments_differ_on_the_same_images(client, alice):
    project = make_project(alice)
    dataset = make_dataset(project, n_train=1, n_val=1)
    first = _experiment(project, dataset, "plain", BASE, val_accuracy=0.75)
    better = _experiment(project, dataset, "better", _with(epochs=3), val_accuracy=0.9)
    close = _experiment(project, dataset, "close", _with(epochs=4), val_accuracy=0.75)
    elsewhere = _experiment(project, dataset, "elsewhere", _with(epochs=5), val_accuracy=0.8)
    truth = [i % 2 for i in range(400)]
    plain = [t if i % 4 else 1 - t for i, t in enumerate(truth)]  # wrong on every 4th image: 75%
    _scored(first, truth, plain)
    _scored(better, truth, [t if i % 20 else 1 - t for i, t in enumerate(truth)])  # 95%, wrong where plain is too
    _scored(close, truth, [t if (i + 1) % 4 else 1 - t for i, t in enumerate(truth)])  # 75%, other mistakes
    _scored(elsewhere, truth, plain, images="other-images")
    client.force_login(alice)
    response = client.get(
        reverse("experiments:compare", args=[project.pk]),
        {"experiment": [first.pk, better.pk, close.pk, elsewhere.pk]},
    )
    rows = response.context["differences"]
    assert rows[0]["text"].startswith("better \u2212 plain: +20.0 points [") and rows[0]["clear"] is True
    assert rows[1]["text"].startswith("close \u2212 plain: 0.0 points [") and rows[1]["text"].endswith(
        "not a clear difference"
    )
    assert rows[2]["text"] is None
    page = response.content.decode()
    assert "elsewhere: not scored on the same images as plain" in page
