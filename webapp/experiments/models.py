import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.functional import cached_property

from webapp.core import storage
from webapp.core.formatting import format_run
from webapp.projects.models import Dataset, Project


class Experiment(models.Model):
    class Mode(models.TextChoices):
        BOTTLENECK = "bottleneck"
        FINETUNE = "finetune"
        SCRATCH = "scratch"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="experiments")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="experiments")
    name = models.CharField(max_length=120)
    notes = models.TextField(blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    backbone = models.CharField(max_length=32)
    # The validated config (workers/ml/options.py), as workers.ml.config.config_to_dict wrote it.
    config = models.JSONField()
    base_experiment = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="finetunes"
    )
    # "Retrain": the experiment whose config this one repeats on a newer dataset version (docs/decisions.md,
    # "Fix and retrain"); the compare page shows the two side by side.
    retrained_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retrains"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name


class TrainingJobQuerySet(models.QuerySet):
    def with_run_numbers(self):
        """Each job's `run_number` in the same query (a correlated count, so a filter on status or a slice
        of the outer query does not renumber the runs)."""
        earlier = (
            TrainingJob.objects.filter(experiment_id=OuterRef("experiment_id"), pk__lte=OuterRef("pk"))
            .order_by()
            .values("experiment_id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return self.annotate(run_number=Subquery(earlier))


class TrainingJob(models.Model):
    """One run of an experiment: queued -> running -> succeeded | failed | cancelled.

    See docs/architecture.md, "Job states".
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    task_id = models.CharField(max_length=64, unique=True, default=uuid.uuid4)
    worker = models.CharField(max_length=255, blank=True)
    progress = models.FloatField(default=0.0)
    phase = models.CharField(max_length=32, blank=True)
    epoch = models.PositiveIntegerField(default=0)
    epochs = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    # The completed epochs the latest attempt continued from (its checkpoint); None: it started at epoch 1.
    resumed_from_epoch = models.PositiveIntegerField(null=True, blank=True)
    # Each publish of the job's message; the reaper re-sends a message that vanished, a few times.
    enqueue_count = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # The queue its message was last sent to (jobqueue.job_queue); "" for jobs sent before it was kept.
    queue = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TrainingJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"job {self.pk} ({self.status})"

    @cached_property
    def run_number(self) -> int:
        """Its place among its experiment's jobs in creation order: 1 for the first. Lists read it through
        TrainingJob.objects.with_run_numbers() instead of one query per row."""
        return TrainingJob.objects.filter(experiment_id=self.experiment_id, pk__lte=self.pk).count()

    @property
    def run_label(self) -> str:
        """ "Run 2": how every page and the dashboard name a run (webapp.core.formatting.format_run)."""
        return format_run(self.run_number)

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def duration(self):
        """Run time so far: start to finish, or to now while it runs; None before it starts."""
        return self.elapsed()

    def elapsed(self, now=None) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or now or timezone.now()) - self.started_at

    def eta(self, now=None) -> timedelta | None:
        """Time left if the rest goes as fast as what is done; None when not running or while the
        first 1% (importing TensorFlow, building the model) would give wild estimates."""
        elapsed = self.elapsed(now)
        if self.status != self.Status.RUNNING or elapsed is None or not 0.01 <= self.progress < 1:
            return None
        return elapsed * ((1 - self.progress) / self.progress)


class EpochMetric(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metrics")
    epoch = models.PositiveIntegerField()
    loss = models.FloatField(null=True)
    accuracy = models.FloatField(null=True)
    val_loss = models.FloatField(null=True)
    val_accuracy = models.FloatField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["epoch"]
        constraints = [models.UniqueConstraint(fields=["job", "epoch"], name="epoch_metric_unique")]

    def __str__(self):
        return f"job {self.job_id} epoch {self.epoch}"


class TrainedModel(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="models")
    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="models")
    job = models.OneToOneField(TrainingJob, on_delete=models.PROTECT, related_name="model")
    version = models.PositiveIntegerField()
    # A storage key ("models/12"), relative to TL_STORAGE_ROOT; `files_dir` is where it is now.
    path = models.CharField(max_length=500, help_text="Storage key of the model's folder, relative to the root.")
    size_bytes = models.BigIntegerField()
    checksum = models.CharField(max_length=64)
    class_names = models.JSONField()
    image_size = models.JSONField()
    backbone = models.CharField(max_length=32)
    metrics = models.JSONField(default=dict)
    # Predictions less confident than this answer "unknown" (accepted: false); None accepts all.
    threshold = models.FloatField(
        null=True, blank=True, help_text="Confidence in [0, 1] below which a prediction is not accepted."
    )
    published = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="model_version_unique"),
            models.UniqueConstraint(fields=["project"], condition=Q(published=True), name="one_published_per_project"),
            models.CheckConstraint(
                condition=Q(threshold__isnull=True) | Q(threshold__gte=0, threshold__lte=1),
                name="model_threshold_range",
            ),
        ]

    def __str__(self):
        return f"{self.project} model v{self.version}"

    @property
    def files_dir(self) -> Path:
        """The model's folder (model.keras, model.json) under the current storage root."""
        return storage.path_of(self.path)


class BackgroundWork(models.Model):
    """What a default-queue task computes for a page: queued -> running -> ready | failed, claimed by
    the worker whose task id it holds, with the result or the error a user can act on."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    task_id = models.CharField(max_length=64, unique=True, default=uuid.uuid4)
    worker = models.CharField(max_length=255, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class LabelReview(BackgroundWork):
    """The likely label errors of one dataset version (docs/decisions.md, "Likely label errors"):
    queued -> running -> ready | failed, computed by a task on the default queue from the bottleneck
    features of `experiment`'s backbone, weights and image size. Asking again replaces the ranking."""

    dataset = models.OneToOneField(Dataset, on_delete=models.CASCADE, related_name="label_review")
    # Whose features: the backbone, weights and image size come from its config.
    experiment = models.ForeignKey(Experiment, null=True, on_delete=models.SET_NULL, related_name="+")
    features = models.JSONField(default=dict)  # {"backbone", "weights", "image_size", "seed"}
    progress = models.FloatField(default=0.0)
    # result: {"class_names", "images", "folds", "cache_hit", "issues": [{path, split, given, suggested,
    # confidence, suggested_confidence}, ...]} ranked, most likely mislabelled first.

    def __str__(self):
        return f"label review of {self.dataset} ({self.status})"

    @property
    def issues(self) -> list[dict]:
        return (self.result or {}).get("issues", [])


class DataMap(BackgroundWork):
    """A trained model's view of its whole dataset (docs/decisions.md, "Error analysis"): each image's
    probabilities and a 2-D place from its backbone features. queued -> running -> ready | failed,
    computed by a task on the default queue; asking again after a failure runs it again."""

    model = models.OneToOneField(TrainedModel, on_delete=models.CASCADE, related_name="data_map")
    seed = models.PositiveIntegerField(default=0)
    # result: {"class_names", "paths", "labels", "probabilities", "coordinates"}: one entry per image, in
    # split, class and file order (workers.ml.datamap.DataMap).

    def __str__(self):
        return f"data map of {self.model} ({self.status})"
