"""`{% image_actions dataset path %}`: relabel / exclude / restore one image of a ready dataset version, for
any gallery (docs/decisions.md, "Fix and retrain"). Optional `suggested="cats"` preselects a class and
`next` is where the form returns (the current page by default). Per page, the dataset's classes and the
user's pending edits are read once."""

import hashlib

from django import template

from webapp.projects.dataset_edits import dataset_edits_pending, image_parts, restorable

register = template.Library()


def _page_facts(context, dataset) -> dict:
    cache = context.render_context.setdefault("image_actions", {})
    if dataset.pk not in cache:
        user = context["request"].user
        cache[dataset.pk] = {
            "classes": list(dataset.classes.values_list("name", flat=True)),
            "edits": {e.path: e for e in dataset_edits_pending(dataset=dataset, user=user)},
            "restorable": restorable(dataset),
        }
    return cache[dataset.pk]


@register.inclusion_tag("projects/_image_actions.html", takes_context=True)
def image_actions(context, dataset, path, suggested="", next=None, fragment=""):
    facts = _page_facts(context, dataset)
    request = context["request"]
    current = image_parts(path)[1]
    edit = facts["edits"].get(path)
    return {
        "dataset": dataset,
        "path": path,
        "current": current,
        "classes": facts["classes"],
        "chosen": edit.new_class if edit and edit.new_class else (suggested or current),
        "edit": edit,
        "left_out": path in facts["restorable"] and edit is None,
        "next": next or request.get_full_path(),
        "fragment": fragment,
        "uid": f"{dataset.pk}-{hashlib.sha1(path.encode()).hexdigest()[:10]}",
        "csrf_token": context.get("csrf_token"),
    }
