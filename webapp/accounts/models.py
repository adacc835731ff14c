from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A key for `Authorization: Token <key>`, stored only as its SHA-256 (webapp/accounts/services.py).

    The key is shown once, when it is created; a copy of the database then holds nothing that
    authenticates.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    # The key's first characters, so that its owner can tell keys apart on the account page.
    prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        # The model moved here from the projects app; its table kept its name, so no row was copied
        # (accounts/migrations/0001_initial.py). The projects migration that hashed DRF's tokens
        # writes to this same table.
        db_table = "projects_apitoken"

    def __str__(self):
        return f"{self.prefix}… ({self.user})"
