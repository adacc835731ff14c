"""Duration estimates on the new-experiment page come from the speed this server's finished runs measured."""

from django.urls import reverse

from tests.experiments.factories import make_dataset, make_project
from webapp.experiments.models import Experiment, TrainingJob


def _finished(project, dataset, *, mode, size, timings):
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name=mode, mode=mode, backbone="vgg16", config={"image_size": size}
    )
    TrainingJob.objects.create(experiment=experiment, status=TrainingJob.Status.SUCCEEDED, result={"timings": timings})


def test_it_says_when_nothing_was_measured_then_estimates_from_finished_runs(client, alice):
    project = make_project(alice)
    dataset = make_dataset(project, n_train=2, n_val=1)  # two classes: 6 images
    client.force_login(alice)
    url = reverse("experiments:estimate", args=[project.pk])
    query = {"mode": "finetune", "backbone": "vgg16", "image_height": 64, "image_width": 64, "epochs": 10}
    query["dataset"] = dataset.pk
    page = client.get(url, query).content.decode()
    assert "No measurement yet for vgg16 at 64\u00d764 (finetune) on this server" in page

    # Another size or mode measures nothing for this one; the same combination does.
    _finished(
        project,
        dataset,
        mode="finetune",
        size=[32, 32],
        timings={"training_s": 1, "epochs_trained": 1, "images_per_epoch": 6},
    )
    _finished(
        project,
        dataset,
        mode="finetune",
        size=[64, 64],
        timings={"training_s": 4.0, "epochs_trained": 2, "images_per_epoch": 6},
    )
    _finished(
        project,
        dataset,
        mode="finetune",
        size=[64, 64],
        timings={"training_s": 2.0, "epochs_trained": 4, "images_per_epoch": 6},
    )
    page = client.get(url, query).content.decode()
    # (2*6 + 4*6) images in 6 s: 6 images/s, so 10 epochs over 6 images take 10 s.
    assert "About 10 s for 10 epochs over 6 images" in page and "6 images/s per epoch" in page
    assert "over its last 2 finished runs" in page

    # A bottleneck run adds the feature extraction; without an extraction measured there is no estimate.
    bottleneck = {**query, "mode": "bottleneck"}
    _finished(
        project,
        dataset,
        mode="bottleneck",
        size=[64, 64],
        timings={
            "training_s": 1.0,
            "epochs_trained": 10,
            "images_per_epoch": 6,
            "extracted_images": 0,
            "feature_extraction_s": 0.0,
        },
    )
    assert "No measurement yet" in client.get(url, bottleneck).content.decode()
    _finished(
        project,
        dataset,
        mode="bottleneck",
        size=[64, 64],
        timings={
            "training_s": 1.0,
            "epochs_trained": 10,
            "images_per_epoch": 6,
            "extracted_images": 6,
            "feature_extraction_s": 3.0,
        },
    )
    page = client.get(url, bottleneck).content.decode()
    # 6 images / 2 per s extracting, then 10 epochs * 6 images / 60 per s training: 4 s.
    assert "2 images/s extracting features" in page and "About 4 s" in page

    assert "An estimate needs" in client.get(url, {**query, "epochs": ""}).content.decode()
