"""The Export menu on the models page: `{% export_menus models as menus %}` reads every model's exports
in one query (the page's view belongs to the experiments app, which sits below this one)."""

from django import template

from webapp.exports import selectors

register = template.Library()


@register.simple_tag
def export_menus(models) -> list[dict]:
    return selectors.export_menus(models)


@register.filter
def difference(value) -> str:
    """A probability difference as the bars state it (1e-4): 3.2e-07; 0 as 0."""
    if value is None or value == "":
        return "—"
    return "0" if float(value) == 0 else f"{float(value):.1e}"
