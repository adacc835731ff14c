"""python manage.py ensure_storage: the storage every process needs, ready before any starts.

bin/run and compose's one-shot `setup` service run it on every start. With TL_STORAGE_URL it creates the
bucket unless it exists (docs/architecture.md, "Object storage") and fails, naming the store, when the
store does not answer; without it, it makes the local root.
"""

from django.core.management.base import BaseCommand, CommandError

from webapp.core import objectstore, storage


class Command(BaseCommand):
    help = "Create the object store's bucket (TL_STORAGE_URL) or the local root (TL_STORAGE_ROOT) unless it exists."

    def handle(self, *args, **options):
        storage.storage_root().mkdir(parents=True, exist_ok=True)
        if not objectstore.enabled():
            return
        try:
            created = objectstore.ensure_bucket()
        except objectstore.StoreError as exc:
            raise CommandError(f"{exc}; check TL_STORAGE_URL, AWS_S3_ENDPOINT_URL and the credentials") from None
        if created or options["verbosity"] > 1:
            self.stdout.write(f"{'Created' if created else 'Using'} the object store {objectstore.describe()}.")
