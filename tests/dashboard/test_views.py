import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from tests.dashboard.factories import make_experiment, make_job, make_project
from webapp.experiments.models import TrainingJob

Status = TrainingJob.Status
INDEX = reverse("dashboard:index")
PANEL = reverse("dashboard:panel")
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def experiment(alice):
    return make_experiment(make_project(alice), user=alice)


def action_urls(job):
    return [
        reverse("dashboard:job_cancel", args=[job.pk]),
        reverse("dashboard:job_retry", args=[job.pk]),
        reverse("dashboard:jobs_reap"),
    ]


# --- who may see and act ---


def test_it_sends_anonymous_visitors_to_sign_in(client, experiment):
    job = make_job(experiment)
    for url in [INDEX, PANEL]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
    for url in action_urls(job):
        response = client.post(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    job.refresh_from_db()
    assert job.status == Status.QUEUED


def test_it_redirects_an_expired_htmx_poll_as_a_whole_page(client):
    response = client.get(PANEL, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith(reverse("login"))


def test_it_forbids_signed_in_users_who_are_not_staff(client, alice, experiment):
    job = make_job(experiment)
    client.force_login(alice)
    assert client.get(INDEX).status_code == 403
    assert client.get(PANEL).status_code == 403
    for url in action_urls(job):
        assert client.post(url).status_code == 403
    job.refresh_from_db()
    assert job.status == Status.QUEUED and not job.cancel_requested


def test_it_shows_staff_the_page_and_its_polling_partial(client, staff, experiment, clean_broker):
    client.force_login(staff)
    page = client.get(INDEX)
    assert page.status_code == 200
    html = page.content.decode()
    assert f'hx-get="{PANEL}"' in html and 'hx-trigger="every 3s"' in html
    assert "Fail stale jobs now" in html

    panel = client.get(PANEL, headers={"HX-Request": "true"})
    assert panel.status_code == 200
    body = panel.content.decode()
    assert "<html" not in body and "Running" in body and "Queued" in body


def test_it_rejects_actions_sent_with_get(client, staff, experiment):
    job = make_job(experiment)
    client.force_login(staff)
    for url in action_urls(job):
        assert client.get(url).status_code == 405


# --- when parts are down ---


def test_it_renders_quickly_and_says_so_when_the_broker_is_down(client, staff, experiment):
    make_job(experiment)
    client.force_login(staff)
    with override_settings(REDIS_URL=DEAD_REDIS):
        started = time.monotonic()
        page = client.get(INDEX)
        panel = client.get(PANEL)
        elapsed = time.monotonic() - started
    assert page.status_code == 200 and panel.status_code == 200
    html = page.content.decode()
    assert "The broker (Redis) is down." in html
    assert "queue depths unknown" in html
    assert "no broker to ask" in html
    # The database half still works: the queued job is listed, by its experiment and run.
    assert f"{experiment.name} · Run 1" in html
    assert elapsed < 5


def test_it_says_when_no_worker_answered(client, staff, clean_broker):
    client.force_login(staff)
    html = client.get(INDEX).content.decode()
    assert "No worker answered" in html
    assert "The broker (Redis) is down" not in html


# --- what the tables show ---


def test_it_lists_queued_jobs_in_order_with_their_position(client, staff, alice, bob, clean_broker):
    first = make_job(make_experiment(make_project(alice), user=alice, name="first-exp"))
    second = make_job(make_experiment(make_project(bob, "Bob's"), user=bob, name="second-exp"))
    client.force_login(staff)
    html = client.get(PANEL).content.decode()
    assert html.index(f'id="job-{first.pk}"') < html.index(f'id="job-{second.pk}"')
    assert "first-exp" in html and "second-exp" in html and "Bob&#x27;s" in html and "bob" in html


def test_it_shows_recent_failures_with_their_errors(client, staff, experiment, clean_broker):
    make_job(experiment, Status.FAILED, error="The dataset has a class with no validation images.")
    client.force_login(staff)
    html = client.get(PANEL).content.decode()
    assert "The dataset has a class with no validation images." in html
    assert "Retry" in html


# --- actions ---


def test_it_cancels_a_queued_job(client, staff, experiment, clean_broker):
    job = make_job(experiment)
    client.force_login(staff)
    response = client.post(reverse("dashboard:job_cancel", args=[job.pk]), follow=True)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert f"Job {job.pk} cancelled before it started." in response.content.decode()


def test_it_asks_a_running_job_to_stop(client, staff, experiment):
    job = make_job(experiment, Status.RUNNING)
    client.force_login(staff)
    response = client.post(reverse("dashboard:job_cancel", args=[job.pk]), follow=True)
    job.refresh_from_db()
    assert job.status == Status.RUNNING and job.cancel_requested
    assert "cancel requested" in response.content.decode()


def test_it_explains_why_a_finished_job_cannot_be_cancelled(client, staff, experiment):
    job = make_job(experiment, Status.SUCCEEDED)
    client.force_login(staff)
    response = client.post(reverse("dashboard:job_cancel", args=[job.pk]), follow=True)
    assert "already ended (succeeded)" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED


def test_it_retries_a_failed_job_onto_the_training_queue(
    client, staff, experiment, clean_broker, django_capture_on_commit_callbacks
):
    job = make_job(experiment, Status.FAILED, error="worker lost")
    client.force_login(staff)
    # The test's transaction never commits: run the service's on-commit enqueue by hand.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("dashboard:job_retry", args=[job.pk]))
    new_job = experiment.jobs.exclude(pk=job.pk).get()
    assert new_job.status == Status.QUEUED
    page = client.get(INDEX)
    assert f"Job {job.pk} retried as job {new_job.pk}" in page.content.decode()
    # The message really is in Redis: the page's queue depth reads it back.
    assert page.context["snap"]["queue_depths"]["training"] == 1


def test_it_refuses_to_retry_a_job_that_is_still_running(client, staff, experiment):
    job = make_job(experiment, Status.RUNNING)
    client.force_login(staff)
    response = client.post(reverse("dashboard:job_retry", args=[job.pk]), follow=True)
    assert "Only a failed or cancelled job can be retried" in response.content.decode()
    assert experiment.jobs.count() == 1


def test_it_fails_stale_jobs_now(client, staff, experiment, clean_broker, settings):
    long_ago = timezone.now() - timedelta(seconds=settings.TL_HEARTBEAT_STALE_SECONDS + 60)
    stale = make_job(experiment, Status.RUNNING, heartbeat_at=long_ago, worker="gone@host")
    fresh = make_job(make_experiment(experiment.project, name="other"), Status.RUNNING)
    client.force_login(staff)
    page = client.get(INDEX).content.decode()
    assert "no heartbeat for over" in page

    response = client.post(reverse("dashboard:jobs_reap"), follow=True)
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == Status.FAILED and stale.error.startswith("worker lost")
    assert fresh.status == Status.RUNNING
    assert f"Failed 1 stale job(s) as worker lost: {stale.pk}." in response.content.decode()

    response = client.post(reverse("dashboard:jobs_reap"), follow=True)
    assert "nothing was failed" in response.content.decode()


def test_it_answers_404_for_an_unknown_job(client, staff):
    client.force_login(staff)
    assert client.post(reverse("dashboard:job_cancel", args=[999999])).status_code == 404
