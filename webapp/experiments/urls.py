from django.urls import path  # noqa: F401  (experiment pages are added here)

app_name = "experiments"
urlpatterns: list = []
