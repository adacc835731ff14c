from django.contrib import admin

from .forms import AdminSignInForm
from .models import ApiToken

# Password guesses at /admin/login/ count against the sign-in budgets too (webapp/core/signin_limits.py).
admin.site.login_form = AdminSignInForm


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Staff can see whose tokens exist and revoke them; keys are never stored, so never shown."""

    list_display = ["prefix", "user", "created_at"]
    search_fields = ["prefix", "user__username"]
    list_select_related = ["user"]
    readonly_fields = ["user", "prefix", "created_at"]
    exclude = ["digest"]

    def has_add_permission(self, request):
        return False  # a key made here could not be shown to its user
