"""python manage.py import_dataset <project-id-or-name> <folder-or-zip> [--owner username]"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webapp.core.errors import ServiceError
from webapp.projects.datasets import dataset_import_path
from webapp.projects.models import Dataset, Project


class Command(BaseCommand):
    help = "Ingest a folder or zip already on the server as a new dataset version of a project."

    def add_arguments(self, parser):
        parser.add_argument("project", help="project id, or name (with --owner when names repeat)")
        parser.add_argument("path", help="a folder (train/ + validation/, or class folders) or a .zip")
        parser.add_argument("--owner", help="username of the project's owner")

    def _project(self, ref: str, owner: str | None) -> Project:
        projects = Project.objects.select_related("owner")
        if owner:
            if not get_user_model().objects.filter(username=owner).exists():
                raise CommandError(f"No user named {owner!r}.")
            projects = projects.filter(owner__username=owner)
        matches = list(projects.filter(pk=int(ref))) if ref.isdigit() else []
        matches = matches or list(projects.filter(name=ref))
        if not matches:
            raise CommandError(f"No project {ref!r}" + (f" owned by {owner!r}." if owner else "."))
        if len(matches) > 1:
            owners = ", ".join(sorted(p.owner.username for p in matches))
            raise CommandError(f"Several projects are named {ref!r} (owners: {owners}); pass --owner.")
        return matches[0]

    def handle(self, *args, project, path, owner, **options):
        target = self._project(project, owner)
        self.stdout.write(f"Importing {path} into project {target.name!r} (id {target.pk})…")
        try:
            dataset = dataset_import_path(project=target, path=path, user=target.owner)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        report = dataset.report or {}
        for line in self._summary(dataset, report):
            self.stdout.write(line)
        if dataset.status != Dataset.Status.READY:
            raise CommandError(f"Dataset v{dataset.version} failed: {dataset.error}")
        self.stdout.write(self.style.SUCCESS(f"Dataset v{dataset.version} (id {dataset.pk}) is ready."))

    def _summary(self, dataset: Dataset, report: dict):
        totals = report.get("totals", {})
        if report.get("layout"):
            yield f"Layout: {report['layout']}" + (f" inside {report['wrapper']}/" if report.get("wrapper") else "")
        for c in report.get("classes", []):
            yield f"  {c['name']}: {c['train_count']} train, {c['validation_count']} validation"
        if totals:
            yield (
                f"Images: {totals.get('train', 0)} train, {totals.get('validation', 0)} validation; "
                f"skipped {totals.get('skipped', 0)}, ignored {totals.get('ignored', 0)} hidden"
            )
        for s in report.get("skipped", {}).get("items", [])[:20]:
            yield f"  skipped {s['file']}: {s['reason']}"
        for warning in report.get("warnings", []):
            yield f"Warning: {warning}"
        if dataset.content_hash:
            yield f"Content hash: {dataset.content_hash}"
