"""Reads for exports, shaped for the API and the models page. Another user's exports are not found (404)."""

from django.shortcuts import get_object_or_404

from .models import ModelExport


def exports_for_model(model):
    return ModelExport.objects.filter(model=model).select_related("model__project").order_by("format")


def export_for_user(user, export_id) -> ModelExport:
    return get_object_or_404(
        ModelExport.objects.select_related("model__project"), pk=export_id, model__project__owner=user
    )


def export_menus(models) -> list[dict]:
    """Per model (in the given order): each format with its export, if any; one query for all."""
    from workers.ml.export import FORMATS  # no TensorFlow: the engine imports it inside its functions

    models = list(models)
    found = {(e.model_id, e.format): e for e in ModelExport.objects.filter(model__in=models)}
    menus = []
    for model in models:
        rows = [_format_row(spec, found.get((model.pk, key))) for key, spec in FORMATS.items()]
        busy = [r for r in rows if r["export"] and not r["export"].is_terminal]
        menus.append({"model": model, "formats": rows, "busy": bool(busy)})
    return menus


def export_menu(model) -> dict:
    """One model's formats with their exports (the part of the models page that polls)."""
    return export_menus([model])[0]


def _format_row(spec, export) -> dict:
    from workers.ml.export import snippet_for

    return {"key": spec.key, "label": spec.label, "description": spec.description, "runtime": spec.runtime,
            "export": export, "snippet": snippet_for(spec.key)}  # fmt: skip
