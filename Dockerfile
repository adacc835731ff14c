# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings.base TL_STORAGE_ROOT=/data TL_VAR_DIR=/app/var
WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY . .
RUN useradd --create-home --uid 1000 transferlab && mkdir -p /data /app/var && chown -R transferlab /data /app/var \
    && DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput -v 0
USER transferlab
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi:application", "-b", "0.0.0.0:8000", "-w", "3", "--threads", "4", "--timeout", "120", "--keep-alive", "75"]
