from django.contrib import admin

from .models import ModelExport


@admin.register(ModelExport)
class ModelExportAdmin(admin.ModelAdmin):
    list_display = ["id", "model", "format", "status", "size_bytes", "latency_ms", "created_at", "finished_at"]
    list_filter = ["status", "format"]
    search_fields = ["model__project__name", "model__project__owner__username"]
    list_select_related = ["model__project"]  # a model prints its project
    readonly_fields = [f.name for f in ModelExport._meta.fields]

    def has_add_permission(self, request):
        return False  # exports are asked for through the app or the API, which queue their work
