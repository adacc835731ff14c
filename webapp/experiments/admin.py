"""Admin for experiments, jobs and models. State fields are read-only: they change only through
services (conditional UPDATEs), so an admin edit can never race a worker."""

from django.contrib import admin, messages
from django.utils.html import format_html

from webapp.core.errors import ServiceError
from webapp.core.formatting import format_duration

from . import services
from .models import EpochMetric, Experiment, TrainedModel, TrainingJob

_JOB_STATE = (
    "status",
    "task_id",
    "worker",
    "progress",
    "phase",
    "epoch",
    "epochs",
    "attempts",
    "cancel_requested",
    "error",
    "log_tail_block",
    "result",
    "heartbeat_at",
    "created_at",
    "started_at",
    "finished_at",
)


class EpochMetricInline(admin.TabularInline):
    model = EpochMetric
    extra = 0
    can_delete = False
    fields = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "mode", "backbone", "dataset", "created_by", "created_at")
    list_filter = ("mode", "backbone", "project")
    search_fields = ("name", "notes", "project__name", "created_by__username")
    list_select_related = ("project", "dataset__project", "created_by")
    readonly_fields = (
        "project",
        "dataset",
        "mode",
        "backbone",
        "config",
        "base_experiment",
        "created_by",
        "created_at",
    )
    fields = ("name", "notes", *readonly_fields)


def _run_on_jobs(modeladmin, request, queryset, service, verb):
    done = 0
    for job in queryset.select_related("experiment"):
        try:
            service(job=job)
            done += 1
        except ServiceError as exc:
            modeladmin.message_user(request, f"Job {job.pk}: {exc.message}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)


@admin.action(description="Cancel selected jobs")
def cancel_jobs(modeladmin, request, queryset):
    _run_on_jobs(modeladmin, request, queryset, services.training_job_cancel, "Cancelled")


@admin.action(description="Retry selected failed/cancelled jobs (as new jobs)")
def retry_jobs(modeladmin, request, queryset):
    _run_on_jobs(modeladmin, request, queryset, services.training_job_retry, "Re-queued")


@admin.action(description="Fail stale jobs now (every running job with a stale heartbeat, selected or not)")
def reap_stale_jobs(modeladmin, request, queryset):
    # The reaper judges all running jobs by heartbeat, as the beat task does; admin actions need a
    # selection to run, but the selection does not narrow it (the staff dashboard's button needs none).
    reaped = services.training_jobs_reap()
    if reaped:
        ids = ", ".join(str(pk) for pk in reaped)
        modeladmin.message_user(request, f"Failed {len(reaped)} stale job(s) as worker lost: {ids}.", messages.SUCCESS)
    else:
        modeladmin.message_user(request, "No running job had a stale heartbeat.", messages.INFO)


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "experiment",
        "project",
        "mode",
        "status",
        "progress_pct",
        "epoch",
        "attempts",
        "worker",
        "duration_display",
        "owner",
        "created_at",
    )
    list_filter = ("status", "experiment__mode", "experiment__project")
    search_fields = (
        "task_id",
        "worker",
        "error",
        "experiment__name",
        "experiment__project__name",
        "experiment__project__owner__username",
    )
    list_select_related = ("experiment__project__owner",)
    readonly_fields = ("experiment", *_JOB_STATE)
    fields = readonly_fields
    inlines = [EpochMetricInline]
    actions = [cancel_jobs, retry_jobs, reap_stale_jobs]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False  # jobs are started from an experiment, through the service (task id, enqueue on commit)

    @admin.display(description="project", ordering="experiment__project__name")
    def project(self, job):
        return job.experiment.project

    @admin.display(description="mode", ordering="experiment__mode")
    def mode(self, job):
        return job.experiment.mode

    @admin.display(description="owner", ordering="experiment__project__owner__username")
    def owner(self, job):
        return job.experiment.project.owner

    @admin.display(description="progress", ordering="progress")
    def progress_pct(self, job):
        return f"{job.progress * 100:.0f}%"

    @admin.display(description="duration")
    def duration_display(self, job):
        return format_duration(job.elapsed())

    @admin.display(description="log tail")
    def log_tail_block(self, job):
        return format_html(
            '<pre style="white-space:pre-wrap;max-height:30em;overflow:auto">{}</pre>', job.log_tail or "—"
        )


@admin.action(description="Publish the selected model (one per project)")
def publish_model(modeladmin, request, queryset):
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one model to publish.", messages.WARNING)
        return
    try:
        model = services.trained_model_publish(model=queryset.get())
    except ServiceError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
        return
    modeladmin.message_user(request, f"{model} is published.", messages.SUCCESS)


@admin.register(TrainedModel)
class TrainedModelAdmin(admin.ModelAdmin):
    list_display = ("__str__", "project", "experiment", "version", "backbone", "published", "size_bytes", "created_at")
    list_filter = ("published", "backbone", "project")
    search_fields = ("project__name", "experiment__name", "checksum")
    list_select_related = ("project", "experiment")
    readonly_fields = (
        "project",
        "experiment",
        "job",
        "version",
        "path",
        "size_bytes",
        "checksum",
        "class_names",
        "image_size",
        "backbone",
        "metrics",
        "published",
        "published_at",
        "created_at",
    )
    actions = [publish_model]

    def has_add_permission(self, request):
        return False
