"""The images behind the numbers: confusion-cell, mistakes and class galleries, and the data map, on
images the real tiny model scored (tests/analysis.py)."""

import pytest
from django.urls import reverse

from tests.analysis import MISFILED, VALIDATION, analysed_experiment
from webapp.experiments import datamaps, galleries
from webapp.experiments.models import DataMap


@pytest.fixture
def experiment(alice, tiny_model):
    return analysed_experiment(alice, tiny_model)


def url(name, experiment, query=""):
    return reverse(f"experiments:{name}", args=[experiment.project_id, experiment.pk]) + query


def test_the_selectors_split_the_scored_images_like_the_matrix(experiment):
    job = galleries.analysed_job(experiment)
    images = galleries.scored_images(job)
    matrix = job.result["evaluation"]["confusion_matrix"]
    labels = job.result["evaluation"]["labels"]
    for i, true in enumerate(labels):
        for j, predicted in enumerate(labels):
            chosen = galleries.cell(images, true=true, predicted=predicted)
            assert len(chosen) == matrix[i][j]
            assert [c.confidence for c in chosen] == sorted((c.confidence for c in chosen), reverse=True)
    wrong = galleries.mistakes(images)
    assert len(wrong) == sum(matrix[i][j] for i in range(3) for j in range(3) if i != j) >= MISFILED
    assert {m.name for m in wrong} >= {f"m{i}.png" for i in range(MISFILED)}  # the misfiled circles
    # The gallery leads with the evaluation's most confident mistake (or one that ties with it at the
    # 4 places the gallery keeps).
    top = job.result["evaluation"]["confident_mistakes"][0]
    assert wrong[0].confidence == pytest.approx(top["confidence"], abs=5e-5)
    assert top["path"] in {w.path for w in wrong if w.confidence == wrong[0].confidence}
    squares = galleries.of_class(images, "square")
    assert [s.label_probability for s in squares] == sorted(s.label_probability for s in squares)
    # The circles filed as squares come before every square the model calls a square.
    misfiled = [s for s in squares if s.name.startswith("m")]
    first_right = next(i for i, s in enumerate(squares) if s.correct)
    assert len(misfiled) == MISFILED and all(squares.index(m) < first_right for m in misfiled)


def test_a_run_recorded_before_galleries_has_none(experiment):
    job = galleries.analysed_job(experiment)
    for key in ("paths", "probabilities"):
        del job.result["scored"][key]
    job.save()
    assert galleries.scored_images(job) is None


def test_the_matrix_cells_link_to_their_images(client, alice, experiment):
    client.force_login(alice)
    page = client.get(reverse("experiments:detail", args=[experiment.project_id, experiment.pk])).content.decode()
    assert url("gallery", experiment, "?true=square&amp;predicted=circle") in page
    assert url("mistakes", experiment) in page and url("data_map", experiment) in page
    # The confident mistakes table shows each image's thumbnail.
    first = galleries.analysed_job(experiment).result["evaluation"]["confident_mistakes"][0]["path"]
    assert reverse("projects:dataset_image", args=[experiment.dataset_id, first]) in page


def test_a_cell_gallery_shows_each_image_with_its_file_label_and_probability(client, alice, experiment):
    client.force_login(alice)
    response = client.get(url("gallery", experiment, "?true=square&predicted=circle"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Labelled square, predicted circle" in page
    shown = galleries.cell(
        galleries.scored_images(galleries.analysed_job(experiment)), true="square", predicted="circle"
    )
    assert shown
    for image in shown:
        assert f'alt="{image.name}, labelled square: predicted circle with {image.confidence:.1%}' in page
        assert reverse("projects:dataset_image", args=[experiment.dataset_id, image.path]) in page
    assert 'tabindex="0"' in page and "image-actions" in page


def test_galleries_are_paginated_and_refuse_what_does_not_exist(client, alice, experiment):
    client.force_login(alice)
    total = 3 * VALIDATION + MISFILED
    first = client.get(url("gallery", experiment))
    assert first.context["page"].paginator.count == total and len(first.context["page"].object_list) == 24
    assert "page 1 of 2" in first.content.decode() and "page=2" in first.content.decode()
    second = client.get(url("gallery", experiment, "?page=2"))
    assert len(second.context["page"].object_list) == total - 24
    assert client.get(url("gallery", experiment, "?page=3")).status_code == 404
    assert client.get(url("gallery", experiment, "?true=hexagon")).status_code == 404
    assert client.get(url("class_gallery", experiment, "?label=hexagon")).status_code == 404


def test_another_users_galleries_and_map_are_not_found(client, bob, experiment):
    client.force_login(bob)
    for name in ("gallery", "mistakes", "class_gallery", "data_map"):
        assert client.get(url(name, experiment)).status_code == 404
    assert client.post(url("data_map", experiment)).status_code == 404
    assert not DataMap.objects.exists()


def test_the_mistakes_gallery_shows_overlays_most_confident_first(client, alice, experiment):
    client.force_login(alice)
    response = client.get(url("mistakes", experiment))
    items = response.context["page"].object_list
    assert items and all(not i.correct for i in items)
    model = galleries.analysed_job(experiment).model
    assert f"{reverse('predictions:explanation', args=[model.pk])}?path=validation/square/m0.png" in (
        response.content.decode()
    )


@pytest.mark.slow
def test_the_map_scores_every_image_and_ranks_whole_classes(
    client, alice, experiment, clean_broker, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    model = galleries.analysed_job(experiment).model
    assert "Compute the map" in client.get(url("data_map", experiment)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the task's message goes to the real broker
        assert client.post(url("data_map", experiment)).status_code == 302
    data_map = DataMap.objects.get(model=model)
    assert (
        data_map.status == "queued"
        and "waiting for a worker" in client.get(url("data_map", experiment)).content.decode()
    )
    assert "HX-Refresh" not in client.get(url("data_map", experiment, "?status=1"))  # polled while queued
    # What the task does in a worker, run here.
    assert datamaps.data_map_run(data_map_id=data_map.pk, worker="test") == "ready"
    assert datamaps.data_map_run(data_map_id=data_map.pk, worker="test") == "skipped"  # a redelivery
    data_map.refresh_from_db()
    assert client.get(url("data_map", experiment, "?status=1"))["HX-Refresh"] == "true"  # done: the page reloads
    n = 3 * (6 + VALIDATION) + MISFILED
    coords = data_map.result["coordinates"]
    assert len(coords) == len(data_map.result["paths"]) == n and all(len(xy) == 2 for xy in coords)
    again = DataMap.objects.create(model=_second_model(model), seed=0)
    assert datamaps.data_map_run(data_map_id=again.pk, worker="test") == "ready"
    again.refresh_from_db()
    assert again.result["coordinates"] == coords  # the same model, images and seed: the same map
    # The page draws it and lists it; the class gallery now ranks training images too.
    response = client.get(url("data_map", experiment))
    assert response.context["chart"]["labels"] == ["circle", "square", "triangle"]
    assert len(response.context["chart"]["points"]) == n and "The map as a table" in response.content.decode()
    squares = client.get(url("class_gallery", experiment, "?label=square"))
    assert squares.context["whole_dataset"] and squares.context["page"].paginator.count == 6 + VALIDATION + MISFILED
    assert not squares.context["page"].object_list[0].correct
    assert client.post(url("data_map", experiment)).status_code == 302  # ready: asking again changes nothing
    assert DataMap.objects.get(pk=data_map.pk).status == "ready"


def _second_model(model):
    from webapp.experiments.models import TrainedModel

    return TrainedModel.objects.create(
        project=model.project, experiment=model.experiment, job=_second_job(model), version=2, path=model.path,
        size_bytes=model.size_bytes, checksum=model.checksum, class_names=model.class_names,
        image_size=model.image_size, backbone=model.backbone,
    )  # fmt: skip


def _second_job(model):
    from webapp.experiments.models import TrainingJob

    return TrainingJob.objects.create(experiment=model.experiment, status=TrainingJob.Status.SUCCEEDED)


def test_a_map_that_fails_says_why_and_can_be_asked_again(client, alice, experiment, clean_broker):
    client.force_login(alice)
    model = galleries.analysed_job(experiment).model
    model.checksum = "0" * 64
    model.save()
    data_map, queued = datamaps.data_map_request(model=model)
    assert queued and datamaps.data_map_run(data_map_id=data_map.pk, worker="test") == "failed"
    data_map.refresh_from_db()
    assert "does not match its recorded checksum" in data_map.error
    page = client.get(url("data_map", experiment)).content.decode()
    assert "The map failed: " in page and "Compute the map again" in page
    again, queued = datamaps.data_map_request(model=model)
    assert queued and again.pk == data_map.pk and again.status == "queued" and again.error == ""
