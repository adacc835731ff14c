from django import template
from django.urls import reverse

register = template.Library()


@register.simple_tag(takes_context=True)
def absolute_url(context, view_name, *args):
    """The full URL of a view as this request reached the server (scheme, host and port included)."""
    path = reverse(view_name, args=args)
    request = context.get("request")
    return request.build_absolute_uri(path) if request is not None else path
