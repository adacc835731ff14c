"""Model rows store a key relative to TL_STORAGE_ROOT instead of an absolute path."""

from pathlib import Path

from django.conf import settings
from django.db import migrations, models


def to_keys(apps, schema_editor):
    TrainedModel = apps.get_model("experiments", "TrainedModel")
    root = Path(settings.TL_STORAGE_ROOT).resolve()
    for model in TrainedModel.objects.exclude(path="").iterator():
        path = Path(model.path)
        if not path.is_absolute():
            continue
        try:
            key = path.resolve().relative_to(root).as_posix()
        except ValueError:
            # Written under another root (the storage moved): its last two parts are the key.
            key = Path(*path.parts[-2:]).as_posix()
        TrainedModel.objects.filter(pk=model.pk).update(path=key)


def to_paths(apps, schema_editor):
    TrainedModel = apps.get_model("experiments", "TrainedModel")
    root = Path(settings.TL_STORAGE_ROOT)
    for model in TrainedModel.objects.exclude(path="").iterator():
        if not Path(model.path).is_absolute():
            TrainedModel.objects.filter(pk=model.pk).update(path=str(root / model.path))


class Migration(migrations.Migration):
    dependencies = [("experiments", "0002_job_enqueue_tracking")]

    operations = [
        migrations.AlterField(
            model_name="trainedmodel",
            name="path",
            field=models.CharField(help_text="Storage key of the model's folder, relative to the root.", max_length=500),
        ),
        migrations.RunPython(to_keys, to_paths),
    ]
