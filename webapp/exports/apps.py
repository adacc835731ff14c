from functools import partial

from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_delete


def _remove_files_on_commit(sender, instance, **kwargs):
    from .services import model_export_files_remove

    # The id now: the delete sets instance.pk to None before the transaction commits.
    transaction.on_commit(partial(model_export_files_remove, export_id=instance.pk))


class ExportsConfig(AppConfig):
    name = "webapp.exports"
    label = "exports"

    def ready(self):
        from .models import ModelExport

        # Export rows also go by cascade (their model or project deleted, the admin), where no
        # service of ours runs: each deleted row takes its folder once the delete commits
        # (docs/decisions.md, "Exports in the app").
        post_delete.connect(_remove_files_on_commit, sender=ModelExport, dispatch_uid="exports-remove-files")
