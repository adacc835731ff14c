from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("webapp.projects.account_urls")),
    path("", include("webapp.projects.urls")),
    path("", include("webapp.experiments.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("webapp.predictions.api_urls")),
    path("dashboard/", include("webapp.dashboard.urls")),
    path("admin/", admin.site.urls),
]
