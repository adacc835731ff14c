"""The app's URLs plus views that fail on purpose: Django and DRF must answer their failures cleanly."""

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from webapp.urls import handler400, handler403, handler404, handler500  # noqa: F401 - Django reads them here
from webapp.urls import urlpatterns as app_urlpatterns


class Broken(Exception):
    pass


class BrokenAPIView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise Broken("the view broke while reading /srv/transferlab/var/storage/models/7/model.keras")


def broken_view(request):
    raise Broken("a plain view broke")


def forbidden_view(request):
    raise PermissionDenied("no")


def fine_view(request):
    return HttpResponse("fine")


urlpatterns = [
    path("api/test/broken/", BrokenAPIView.as_view()),
    path("api/test/broken-plain/", broken_view),
    path("api/test/forbidden-plain/", forbidden_view),
    path("test/broken-page/", broken_view),
    path("test/forbidden-page/", forbidden_view),
    path("test/fine/", fine_view),
    *app_urlpatterns,
]
