from django.urls import path

from . import views

app_name = "exports"
_model = "projects/<int:project_id>/models/<int:model_id>"
urlpatterns = [
    path(f"{_model}/exports/", views.export_menu, name="menu"),
    path(f"{_model}/exports/start/", views.export_start, name="start"),
]
