"""The Export menu of the models page: start an export (a form post) and the menu's polled part."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.core.errors import ServiceError
from webapp.experiments.selectors import model_in_project_for_user

from . import selectors, services


def _model(request, project_id, model_id):
    return model_in_project_for_user(request.user, project_id, model_id)


@login_required
@require_POST
def export_start(request, project_id, model_id):
    model = _model(request, project_id, model_id)
    fmt = request.POST.get("format", "")
    try:
        export, queued = services.model_export_request(model=model, fmt=fmt)
    except ServiceError as exc:  # an unknown format, or the queue down (the export is then failed with why)
        messages.error(request, exc.message)
    else:
        if queued:
            messages.success(
                request, f"Exporting model v{model.version} to {fmt}: it is verified before it is offered."
            )
        else:
            messages.info(request, f"Model v{model.version} already has a {fmt} export ({export.status}).")
    return redirect(reverse("experiments:models", args=[project_id]) + f"#exports-{model.pk}")


@login_required
@require_GET
def export_menu(request, project_id, model_id):
    """The formats of one model, polled by htmx while an export is queued or running."""
    model = _model(request, project_id, model_id)
    return render(request, "exports/_menu.html", {"project": model.project, "menu": selectors.export_menu(model)})
