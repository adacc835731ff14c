"""A run is named by its place among its experiment's jobs ("Run 2"), on every page and the dashboard."""

from django.urls import reverse

from tests.experiments.factories import make_dataset, make_project
from webapp.experiments.models import Experiment, TrainingJob

Status = TrainingJob.Status


def _experiment(project, dataset, name):
    return Experiment.objects.create(
        project=project, dataset=dataset, name=name, mode="scratch", backbone="vgg16", config={"mode": "scratch"}
    )


def test_it_numbers_each_experiments_runs_in_creation_order_whatever_the_query(alice, django_assert_num_queries):
    project = make_project(alice)
    dataset = make_dataset(project, n_train=2, n_val=1)
    first, second = _experiment(project, dataset, "First"), _experiment(project, dataset, "Second")
    # Interleaved with another experiment's jobs: global ids 1, 2, 3, 4 are First's runs 1, 2 and Second's 1, 2.
    a1 = TrainingJob.objects.create(experiment=first, status=Status.FAILED)
    b1 = TrainingJob.objects.create(experiment=second, status=Status.SUCCEEDED)
    a2 = TrainingJob.objects.create(experiment=first, status=Status.RUNNING)
    b2 = TrainingJob.objects.create(experiment=second, status=Status.QUEUED)
    with django_assert_num_queries(1):
        labels = {job.pk: job.run_label for job in TrainingJob.objects.with_run_numbers()}
    assert labels == {a1.pk: "Run 1", b1.pk: "Run 1", a2.pk: "Run 2", b2.pk: "Run 2"}
    # Filtering the outer query does not renumber: the running job is still First's second run.
    assert [j.run_label for j in TrainingJob.objects.with_run_numbers().filter(status=Status.RUNNING)] == ["Run 2"]
    # A job read on its own counts with one query of its own.
    assert TrainingJob.objects.get(pk=b2.pk).run_label == "Run 2"


def test_the_experiment_page_and_the_dashboard_name_runs_not_global_ids(client, alice, staff):
    project = make_project(alice)
    dataset = make_dataset(project, n_train=2, n_val=1)
    other = _experiment(project, dataset, "Other")
    for _ in range(3):
        TrainingJob.objects.create(experiment=other, status=Status.FAILED)
    experiment = _experiment(project, dataset, "Scratch net")
    TrainingJob.objects.create(experiment=experiment, status=Status.FAILED)
    TrainingJob.objects.create(experiment=experiment, status=Status.QUEUED)
    client.force_login(alice)
    page = client.get(reverse("experiments:detail", args=[project.pk, experiment.pk])).content.decode()
    assert "<td>Run 1</td>" in page and "<td>Run 2</td>" in page and "Run 5" not in page
    assert "Run 2 · attempt" in page  # the status block names the latest run the same way
    assert "From scratch · small convnet" in page
    client.force_login(staff)
    dashboard = client.get(reverse("dashboard:index")).content.decode()
    assert "Scratch net · Run 2" in dashboard and "Other · Run 3" in dashboard
