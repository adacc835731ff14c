from django.contrib import admin
from django.urls import include, path

from webapp.projects.views import home

urlpatterns = [
    # First: Django tries the patterns in order, and the pages' "" includes hold some 80 routes that every API
    # request was matched against first (about 5 % of predict's overhead over the model call, issue 20,
    # point 7). No other pattern matches a path under api/v1/, so the order changes no answer.
    path("api/v1/", include("webapp.api_urls")),
    path("", home, name="home"),
    path("", include("webapp.accounts.urls")),
    path("", include("webapp.projects.urls")),
    path("", include("webapp.experiments.urls")),
    path("", include("webapp.exports.urls")),
    path("", include("webapp.predictions.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("dashboard/", include("webapp.dashboard.urls")),
    path("admin/", admin.site.urls),
]

# Django's own errors: JSON under /api/ and for the pages' scripts, Django's pages otherwise.
handler400 = "webapp.error_views.bad_request"
handler403 = "webapp.error_views.permission_denied"
handler404 = "webapp.error_views.page_not_found"
handler500 = "webapp.error_views.server_error"
