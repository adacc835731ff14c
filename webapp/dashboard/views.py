"""Staff dashboard: adapters over dashboard.selectors (reads) and experiments.services (actions)."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.core.errors import ServiceError
from webapp.experiments import services
from webapp.experiments.models import TrainingJob

from .selectors import dashboard_snapshot


def staff_required(view):
    """Anonymous users are sent to sign in; signed-in users who are not staff get 403.

    (Django's staff_member_required sends both to the admin login, which hides the difference.)
    An htmx poll whose session expired gets HX-Redirect, so the whole page goes to sign-in
    instead of the login form being swapped into the panel.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if request.headers.get("HX-Request"):
                response = redirect_to_login(request.headers.get("HX-Current-URL") or request.get_full_path())
                hx = HttpResponse(status=204)
                hx["HX-Redirect"] = response["Location"]
                return hx
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("The dashboard is for staff.")
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@staff_required
def index(request):
    return render(request, "dashboard/index.html", {"snap": dashboard_snapshot()})


@require_GET
@staff_required
def panel(request):
    """The live part of the page, re-fetched by htmx every few seconds."""
    return render(request, "dashboard/_panel.html", {"snap": dashboard_snapshot()})


@require_POST
@staff_required
def job_cancel(request, job_id: int):
    job = get_object_or_404(TrainingJob, pk=job_id)
    try:
        job = services.training_job_cancel(job=job)
    except ServiceError as exc:
        messages.error(request, f"Job {job.pk}: {exc.message}")
    else:
        if job.status == TrainingJob.Status.CANCELLED:
            messages.success(request, f"Job {job.pk} cancelled before it started.")
        else:
            messages.success(request, f"Job {job.pk}: cancel requested; it stops after its current batch.")
    return redirect("dashboard:index")


@require_POST
@staff_required
def job_retry(request, job_id: int):
    job = get_object_or_404(TrainingJob, pk=job_id)
    try:
        new_job = services.training_job_retry(job=job)
    except ServiceError as exc:
        messages.error(request, f"Job {job.pk}: {exc.message}")
    else:
        messages.success(request, f"Job {job.pk} retried as job {new_job.pk} (queued).")
    return redirect("dashboard:index")


@require_POST
@staff_required
def jobs_reap(request):
    reaped = services.training_jobs_reap()
    if reaped:
        ids = ", ".join(str(pk) for pk in reaped)
        messages.success(request, f"Failed {len(reaped)} stale job(s) as worker lost: {ids}.")
    else:
        messages.info(request, "No running job has a stale heartbeat; nothing was failed.")
    return redirect("dashboard:index")
