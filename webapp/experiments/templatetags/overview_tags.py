from django import template

from ..overview import project_overview

register = template.Library()


@register.inclusion_tag("experiments/_project_overview.html")
def project_overview_card(project):
    """The project page's overview: published model, best experiment, running jobs, next step."""
    return {"project": project, **project_overview(project)}


@register.inclusion_tag("experiments/_project_summary.html")
def project_summary(project):
    """One line per project in the projects list."""
    return {"project": project, **project_overview(project)}
