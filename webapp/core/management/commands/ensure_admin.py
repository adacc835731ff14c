"""python manage.py ensure_admin: the first admin user, created once.

bin/run and compose's one-shot `setup` service run it on every start, before anything else serves:
it does nothing once any superuser exists, so a renamed, re-passworded or added admin is never touched.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


class Command(BaseCommand):
    help = (
        "Create the first admin user unless a superuser exists: named TL_ADMIN_USERNAME (default admin), "
        "with the password TL_ADMIN_PASSWORD or, when that is unset, a generated one printed once."
    )

    def handle(self, *args, **options):
        users = get_user_model().objects
        username = os.environ.get("TL_ADMIN_USERNAME") or "admin"
        given = os.environ.get("TL_ADMIN_PASSWORD") or ""
        with transaction.atomic():
            if users.filter(is_superuser=True).exists():
                if options["verbosity"] > 1:
                    self.stdout.write("A superuser exists: no admin created.")
                return
            if users.filter(username=username).exists():
                raise CommandError(
                    f"A user named {username!r} exists but is not a superuser: set TL_ADMIN_USERNAME to another "
                    "name, or make that user a superuser in /admin/ or `manage.py shell`."
                )
            password = given or secrets.token_urlsafe(12)
            users.create_superuser(username, "", password)
        shown = "(from TL_ADMIN_PASSWORD)" if given else password
        self.stdout.write(
            f"\n  First admin user created: username {username!r}, password {shown}\n"
            "  (shown once; change it in /admin/)\n"
        )
