"""python manage.py import_sample <project-id-or-name> <sample> [--per-class N|all] [--owner username]"""

from django.core.management.base import CommandError

from webapp.core.errors import ServiceError
from webapp.projects.datasets import dataset_import_sample
from webapp.projects.models import Dataset
from workers.ml.samples import SAMPLES

from .import_dataset import Command as ImportDatasetCommand


class Command(ImportDatasetCommand):
    help = (
        f"Load a Keras sample dataset ({', '.join(SAMPLES)}) and ingest it as a new dataset version of a project. "
        "Keras downloads it once into its cache ($KERAS_HOME/datasets)."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="project id, or name (with --owner when names repeat)")
        parser.add_argument("sample", help=f"{', '.join(SAMPLES)} (shapes is generated: no download)")
        parser.add_argument("--per-class", default="100", help="training images per class (default 100), or all")
        parser.add_argument("--owner", help="username of the project's owner")

    def handle(self, *args, project, sample, per_class, owner, **options):
        target = self._project(project, owner)
        if per_class != "all" and not per_class.isdigit():
            raise CommandError(f"--per-class must be a whole number or 'all'; got {per_class!r}.")
        count = None if per_class == "all" else int(per_class)
        self.stdout.write(f"Importing the sample {sample} into project {target.name!r} (id {target.pk})…")
        try:
            dataset = dataset_import_sample(project=target, sample=sample, per_class=count, user=target.owner)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        report = dataset.report or {}
        for line in self._summary(dataset, report):
            self.stdout.write(line)
        if dataset.status != Dataset.Status.READY:
            raise CommandError(f"Dataset v{dataset.version} failed: {dataset.error}")
        if report.get("sample"):
            self.stdout.write(f"This version is {report['sample']['note']}.")
        self.stdout.write(self.style.SUCCESS(f"Dataset v{dataset.version} (id {dataset.pk}) is ready."))
