"""Which queue a training job is sent to: head-only jobs (cached features) to the warm worker's."""

import pytest
from django.utils import timezone

from tests.experiments.factories import BOTTLENECK, make_dataset, make_project
from webapp.dashboard.selectors import queued_per_queue
from webapp.experiments import services
from webapp.experiments.jobqueue import features_cached, job_queue
from webapp.experiments.models import TrainingJob

pytestmark = pytest.mark.django_db(transaction=True)

Status = TrainingJob.Status
SCRATCH = {"mode": "scratch", "image_size": [32, 32], "epochs": 1}


@pytest.fixture(autouse=True)
def warm_queue(settings, clean_broker):
    """Routing on; the messages these tests send are removed after (no worker here takes them)."""
    settings.TL_WARM_QUEUE = "training-warm"


def _experiment(project, dataset, user, **config):
    return services.experiment_create(
        project=project, dataset=dataset, config={**BOTTLENECK, **config}, name="exp", notes="", user=user, start=False
    )


def _succeeded(experiment, used="float32"):
    """A finished run of `experiment` whose features were computed in `used`."""
    return TrainingJob.objects.create(
        experiment=experiment,
        status=Status.SUCCEEDED,
        finished_at=timezone.now(),
        result={"timings": {"precision": {"requested": "auto", "used": used, "source": "measured"}}},
    )


def test_a_bottleneck_job_goes_warm_once_a_run_on_the_same_content_with_the_same_base_succeeded(alice):
    project = make_project(alice)
    dataset = make_dataset(project)
    first = _experiment(project, dataset, alice)
    assert not features_cached(first)
    job = services.training_job_start(experiment=first)
    assert job_queue(job) == "training" and TrainingJob.objects.get(pk=job.pk).queue == "training"
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())

    # Another dataset row with the same content (another project) shares the cached features.
    other = make_project(alice, name="Other")
    same_content = make_dataset(other)
    same_content.content_hash = dataset.content_hash
    same_content.save()
    again = _experiment(other, same_content, alice, epochs=5, head={"units": 8, "dropout": 0.3})
    job = services.training_job_start(experiment=again)
    assert TrainingJob.objects.get(pk=job.pk).queue == "training-warm"
    assert queued_per_queue() == {"training-warm": 1}


@pytest.mark.parametrize(
    "change",
    [
        {"image_size": [48, 48]},
        {"seed": 7},  # random weights: another seed is another base
        {"precision": "bfloat16"},  # the earlier run computed float32 features
    ],
    ids=["image size", "seed", "precision"],
)
def test_a_different_base_or_precision_is_not_head_only(alice, change):
    project = make_project(alice)
    dataset = make_dataset(project)
    _succeeded(_experiment(project, dataset, alice))
    assert features_cached(_experiment(project, dataset, alice))
    assert not features_cached(_experiment(project, dataset, alice, **change))


def test_auto_precision_takes_features_of_either_precision_and_a_named_one_only_its_own(alice):
    project = make_project(alice)
    dataset = make_dataset(project)
    _succeeded(_experiment(project, dataset, alice), used="bfloat16")
    assert features_cached(_experiment(project, dataset, alice, precision="auto"))
    assert features_cached(_experiment(project, dataset, alice, precision="bfloat16"))
    assert not features_cached(_experiment(project, dataset, alice, precision="float32"))


def test_failed_runs_other_data_and_other_modes_do_not_count(alice):
    project = make_project(alice)
    dataset = make_dataset(project)
    base = _experiment(project, dataset, alice)
    TrainingJob.objects.create(experiment=base, status=Status.FAILED, finished_at=timezone.now())
    assert not features_cached(_experiment(project, dataset, alice))
    _succeeded(base)
    assert not features_cached(_experiment(project, make_dataset(project, seed=1), alice))
    scratch = services.experiment_create(
        project=project, dataset=dataset, config=SCRATCH, name="scratch", notes="", user=alice, start=False
    )
    job = services.training_job_start(experiment=scratch)
    assert TrainingJob.objects.get(pk=job.pk).queue == "training"


def test_gpu_jobs_stay_on_the_gpu_queue_and_an_empty_warm_queue_turns_routing_off(alice, settings):
    project = make_project(alice)
    dataset = make_dataset(project)
    _succeeded(_experiment(project, dataset, alice))
    gpu = services.training_job_start(experiment=_experiment(project, dataset, alice, device="gpu"))
    assert TrainingJob.objects.get(pk=gpu.pk).queue == "training-gpu"
    settings.TL_WARM_QUEUE = ""
    cpu = services.training_job_start(experiment=_experiment(project, dataset, alice))
    assert TrainingJob.objects.get(pk=cpu.pk).queue == "training"
