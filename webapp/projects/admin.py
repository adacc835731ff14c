from django.contrib import admin

from .models import Dataset, DatasetClass, Project, UploadSession


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "store_predictions", "created_at", "updated_at"]
    list_filter = ["store_predictions", "created_at"]
    search_fields = ["name", "description", "owner__username"]
    list_select_related = ["owner"]
    raw_id_fields = ["owner"]
    readonly_fields = ["created_at", "updated_at"]


class DatasetClassInline(admin.TabularInline):
    model = DatasetClass
    extra = 0
    can_delete = False
    readonly_fields = ["name", "train_count", "validation_count"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "project_owner", "version", "status", "source", "created_at", "finished_at"]
    list_filter = ["status", "source", "project"]
    search_fields = ["project__name", "project__owner__username", "original_name", "content_hash", "error"]
    list_select_related = ["project", "project__owner"]
    raw_id_fields = ["project", "created_by"]
    inlines = [DatasetClassInline]
    # Ready datasets are immutable (docs/architecture.md, "Storage layout"): everything ingest wrote is read-only here.
    readonly_fields = [
        "version",
        "source",
        "original_name",
        "content_hash",
        "stats",
        "report",
        "error",
        "progress",
        "task_id",
        "created_at",
        "finished_at",
    ]

    @admin.display(description="owner", ordering="project__owner__username")
    def project_owner(self, obj):
        return obj.project.owner


@admin.register(DatasetClass)
class DatasetClassAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "train_count", "validation_count"]
    list_filter = ["dataset__status", "dataset__project"]
    search_fields = ["name", "dataset__project__name"]
    list_select_related = ["dataset", "dataset__project"]
    readonly_fields = ["dataset", "name", "train_count", "validation_count"]


@admin.register(UploadSession)
class UploadSessionAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "created_by", "file_count", "total_bytes", "updated_at"]
    list_filter = ["project"]
    list_select_related = ["project", "created_by"]
    readonly_fields = ["project", "created_by", "file_count", "total_bytes", "created_at", "updated_at"]
