import uuid

from django.conf import settings
from django.db import models


class Project(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # Opt-in: keep images sent to the prediction endpoint (off by default).
    store_predictions = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="project_name_unique_per_owner")]

    def __str__(self):
        return self.name


FEATURE_HASH_ID_PREFIX = "dataset-"


class Dataset(models.Model):
    """One immutable version of a project's images. Ready datasets never change."""

    class Status(models.TextChoices):
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    class Source(models.TextChoices):
        ZIP = "zip"
        FOLDER = "folder"
        IMPORT = "import"
        SAMPLE = "sample"  # a Keras sample dataset (workers/ml/samples.py), written and ingested by the worker

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    original_name = models.CharField(max_length=255, blank=True)
    # Share of each class's training images set aside as a test split when the upload has no
    # test/ folder; None: TL_TEST_FRACTION.
    test_fraction = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    content_hash = models.CharField(max_length=64, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    progress = models.FloatField(default=0.0)
    task_id = models.CharField(max_length=64, blank=True)
    # Each publish of the ingest message; the reaper re-sends a message that vanished, a few times.
    enqueue_count = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # Set by the claim when a worker starts the ingest; heartbeat_at is then bumped while it runs.
    worker = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="dataset_version_unique")]

    def __str__(self):
        return f"{self.project} v{self.version}"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def feature_hash(self) -> str:
        """What the feature cache is keyed by: the content hash, or the id while there is none.

        Datasets with the same content share features, so a cache folder stays while any
        dataset with its hash remains.
        """
        return self.content_hash or f"{FEATURE_HASH_ID_PREFIX}{self.pk}"


class DatasetClass(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="classes")
    name = models.CharField(max_length=255)
    train_count = models.PositiveIntegerField(default=0)
    validation_count = models.PositiveIntegerField(default=0)
    test_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="dataset_class_unique")]

    def __str__(self):
        return self.name


class UploadSession(models.Model):
    """A folder upload in progress: the browser sends its files in batches, then finishes it.

    Files wait under storage/uploads/session-<id>/; finishing turns them into a Dataset.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="upload_sessions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    file_count = models.PositiveIntegerField(default=0)
    total_bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"upload {self.pk} ({self.file_count} files)"


class DatasetEdit(models.Model):
    """A pending change to one image of a ready version, kept until "Create new version" applies it
    (docs/decisions.md, "Fix and retrain"). One per (dataset, user, image): a later action replaces it.

    relabel: the image moves to `new_class`; exclude: it is left out; restore: an image the version's
    parent had and this version left out comes back (from the parent's files).
    """

    class Action(models.TextChoices):
        RELABEL = "relabel"
        EXCLUDE = "exclude"
        RESTORE = "restore"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="edits")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # Relative to the dataset's folder, as the engine and the report name images: "train/cats/0001.jpg".
    path = models.CharField(max_length=1024)
    action = models.CharField(max_length=16, choices=Action.choices)
    new_class = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["dataset", "user", "path"], name="dataset_edit_unique")]

    def __str__(self):
        return f"{self.action} {self.path}"
