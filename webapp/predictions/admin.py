from django.contrib import admin

from .models import PredictionLog


@admin.register(PredictionLog)
class PredictionLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "project", "model", "image_count", "latency_ms", "status_code"]
    list_filter = ["status_code", "created_at"]
    search_fields = ["project__name", "project__owner__username"]
    list_select_related = ["project", "model__project"]  # a model prints its project
    date_hierarchy = "created_at"
    readonly_fields = ["project", "model", "created_at", "image_count", "latency_ms", "status_code"]

    def has_add_permission(self, request):
        return False
