from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from webapp.core.health import health_report


@staff_member_required
def index(request):
    return render(request, "dashboard/index.html", {"health": health_report()})
