# One image for every process: docker-compose.yml picks which one, each by its name in bin/launch.py.
FROM python:3.11-slim-bookworm
# TL_BIND: where `bin/launch.py serve web` listens (the port docker-compose.yml publishes).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings.base TL_STORAGE_ROOT=/data TL_VAR_DIR=/app/var TL_BIND=0.0.0.0:8000
WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY . .
RUN useradd --create-home --uid 1000 transferlab && mkdir -p /data /app/var && chown -R transferlab /data /app/var \
    && DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput -v 0
USER transferlab
EXPOSE 8000
# exec's the declared gunicorn command line: gunicorn becomes the container's main process.
CMD ["python", "bin/launch.py", "serve", "web"]
