from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "webapp.core"
    label = "core"

    def ready(self):
        # Make the configured Celery app current in every Django process, so that tasks sent from
        # web processes use the broker from settings rather than Celery's default (amqp://).
        # Here rather than in webapp/__init__.py: importing workers.celery there would set its
        # DJANGO_SETTINGS_MODULE default before wsgi.py sets the production one.
        import workers.celery  # noqa: F401
