from django.db import models

from webapp.experiments.models import TrainedModel
from webapp.projects.models import Project


class PredictionLog(models.Model):
    """One call to a predict endpoint, for the dashboard's traffic figures (images are not kept)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prediction_logs")
    model = models.ForeignKey(TrainedModel, null=True, on_delete=models.SET_NULL, related_name="prediction_logs")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    image_count = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField()
    status_code = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.project} {self.created_at:%Y-%m-%d %H:%M} {self.image_count} image(s)"
