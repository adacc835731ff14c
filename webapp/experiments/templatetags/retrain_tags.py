"""`{% retrain_panel experiment %}` on the experiment page: Retrain on a version made from its version, and
the retrains already made, each with a link to the compare page (docs/decisions.md, "Fix and retrain")."""

from django import template
from django.urls import reverse

from webapp.experiments.models import Experiment
from webapp.experiments.retrain import retrain_targets

register = template.Library()


def _compare_url(project_id: int, *experiment_ids: int) -> str:
    query = "&".join(f"experiment={pk}" for pk in experiment_ids)
    return f"{reverse('experiments:compare', args=[project_id])}?{query}"


@register.inclusion_tag("experiments/_retrain.html", takes_context=True)
def retrain_panel(context, experiment: Experiment):
    retrains = list(
        Experiment.objects.filter(retrained_from=experiment).select_related("dataset").order_by("-created_at")
    )
    origin = experiment.retrained_from
    return {
        "experiment": experiment,
        "targets": retrain_targets(experiment),
        "retrains": [
            {"experiment": r, "compare": _compare_url(experiment.project_id, experiment.pk, r.pk)} for r in retrains
        ],
        "origin": origin,
        "origin_compare": _compare_url(experiment.project_id, origin.pk, experiment.pk) if origin else "",
        "csrf_token": context.get("csrf_token"),
    }
