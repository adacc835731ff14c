from pathlib import Path

from django.db import models

from webapp.core import storage
from webapp.experiments.models import TrainedModel

# The download inside an export's folder.
BUNDLE = "bundle.zip"


class ModelExport(models.Model):
    """A trained model in one portable format, verified in its own runtime before it is offered.

    queued -> running -> ready | failed; one row per (model, format): asking again returns it, and
    a failed one is run again (docs/decisions.md, "Exports in the app").
    """

    class Format(models.TextChoices):
        # The keys of workers.ml.export.FORMATS (the engine holds their labels, runtimes and descriptions).
        KERAS = "keras"
        SAVEDMODEL = "savedmodel"
        TFLITE = "tflite"
        TFLITE_INT8 = "tflite_int8"
        ONNX = "onnx"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"

    TERMINAL = (Status.READY, Status.FAILED)

    model = models.ForeignKey(TrainedModel, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=16, choices=Format.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # A storage key ("exports/12") once ready; `files_dir` is where it is now.
    path = models.CharField(max_length=500, blank=True, help_text="Storage key of the export's folder, once ready.")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    # {"n", "max_abs_diff", "top1_agreement"}: the export against the Keras model on validation images.
    verification = models.JSONField(default=dict, blank=True)
    latency_ms = models.FloatField(null=True, blank=True, help_text="Measured per image on the worker that built it.")
    runtime = models.CharField(max_length=120, blank=True, help_text="What loaded and verified it, with its version.")
    card = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model", "format"]
        constraints = [models.UniqueConstraint(fields=["model", "format"], name="export_unique_per_model_format")]

    def __str__(self):
        return f"{self.model} {self.format} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def files_dir(self) -> Path | None:
        return storage.path_of(self.path) if self.path else None

    @property
    def bundle(self) -> Path | None:
        """The download, bundle.zip, or None before the export is ready."""
        folder = self.files_dir
        return folder / BUNDLE if folder else None
