"""Production settings: everything comes from the environment (README, Configuration).

local.py and test.py only change defaults; a bad value fails at start naming the variable.
"""

import os
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from .env import env_bool, env_float, env_http_url, env_int, env_list, env_networks, env_s3_url, env_str
from .private import private_file

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("TL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY is required (local runs generate one; see README)")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webapp.core",
    "webapp.accounts",
    "webapp.projects",
    "webapp.experiments",
    "webapp.predictions",
    "webapp.exports",
    "webapp.dashboard",
]

MIDDLEWARE = [
    # First, so that every log line of a request, Django's own 500 report included, carries its id.
    "webapp.core.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves static/ from the app process so the two-command quick start needs no nginx.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads a multipart body: files are capped unless the view raises the cap.
    "webapp.core.uploads.UploadLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Times are shown in the reader's zone, which their browser states in a cookie (static/js/timezone.js).
    "webapp.core.timezones.ReaderTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webapp.core.context_processors.site",
            ],
            # Every page formats percentages, durations, times, modes and backbones with these filters alone.
            "builtins": ["webapp.core.templatetags.present"],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write to one SQLite file; WAL plus a busy timeout avoids "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and DATABASES["default"]["NAME"] != ":memory:":
    # The database holds session keys and password hashes: created 0600 before SQLite opens it (its
    # -wal and -shm files take the database's mode), and an existing world-readable one is closed.
    private_file(Path(DATABASES["default"]["NAME"]))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# A page's script gets JSON for a failed CSRF check, the API its own error shape (webapp/error_views.py).
CSRF_FAILURE_VIEW = "webapp.error_views.csrf_failure"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "home"
TL_SIGNUP_ENABLED = env_bool("TL_SIGNUP_ENABLED", False)
# Failed password sign-ins (page and API) allowed per account and per client address within the
# window; past either the attempt is refused with 429 until the window ends (webapp/core/signin_limits.py).
TL_SIGNIN_LIMIT_PER_ACCOUNT = env_int("TL_SIGNIN_LIMIT_PER_ACCOUNT", 10, minimum=1)
TL_SIGNIN_LIMIT_PER_ADDRESS = env_int("TL_SIGNIN_LIMIT_PER_ADDRESS", 30, minimum=1)
TL_SIGNIN_WINDOW_SECONDS = env_int("TL_SIGNIN_WINDOW_SECONDS", 900, minimum=1)
# Proxies whose X-Forwarded-For is believed (IPs or CIDRs); any client can send that header, so
# with none listed the socket's peer is the client address (webapp/core/addresses.py).
TL_TRUSTED_PROXIES = env_networks("TL_TRUSTED_PROXIES")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Files Django's storages write (collectstatic into var/) take the process's umask, which bin/run
# sets to 077, instead of Django's default of 0644 for everyone (webapp serves them itself).
FILE_UPLOAD_PERMISSIONS = None

# --- Storage and ML (docs/architecture.md, "Storage layout") ---
TL_STORAGE_ROOT = Path(env_str("TL_STORAGE_ROOT", str(VAR_DIR / "storage")))
# An S3-compatible store shared by every host (docs/architecture.md, "Object storage"); unset, the local
# root is the store. With it, TL_STORAGE_ROOT is this host's working copy: a cache of what it fetched,
# least recently used out past TL_STORAGE_CACHE_BYTES. Credentials and region: boto3's usual variables.
TL_STORAGE_URL = env_s3_url("TL_STORAGE_URL")
TL_STORAGE_CACHE_BYTES = env_int("TL_STORAGE_CACHE_BYTES", 20 * 1024**3, minimum=1)
AWS_S3_ENDPOINT_URL = env_http_url("AWS_S3_ENDPOINT_URL") or env_http_url("AWS_ENDPOINT_URL")
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID") or None
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY") or None
if bool(AWS_ACCESS_KEY_ID) != bool(AWS_SECRET_ACCESS_KEY):
    missing = "AWS_SECRET_ACCESS_KEY" if AWS_ACCESS_KEY_ID else "AWS_ACCESS_KEY_ID"
    raise ImproperlyConfigured(
        f"{missing} is not set: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"
    )
AWS_DEFAULT_REGION = env_str("AWS_DEFAULT_REGION") or "us-east-1"
TL_WEIGHTS_DIR = env_str("TL_WEIGHTS_DIR") or None
if TL_WEIGHTS_DIR and not Path(TL_WEIGHTS_DIR).is_dir():
    raise ImproperlyConfigured(f"TL_WEIGHTS_DIR={TL_WEIGHTS_DIR!r} is not a directory")
# Uploads larger than this many bytes are spooled to disk by Django, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The browser sends folder uploads in batches of TL_UPLOAD_BATCH_FILES files
# (docs/decisions.md, "Folder uploads").
TL_UPLOAD_BATCH_FILES = 50
DATA_UPLOAD_MAX_NUMBER_FILES = 2 * TL_UPLOAD_BATCH_FILES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 4 * TL_UPLOAD_BATCH_FILES + 100
TL_MAX_UPLOAD_BYTES = env_int("TL_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1)
TL_ZIP_MAX_TOTAL_BYTES = env_int("TL_ZIP_MAX_TOTAL_BYTES", 4 * 1024**3, minimum=1)
TL_ZIP_MAX_ENTRIES = env_int("TL_ZIP_MAX_ENTRIES", 200_000, minimum=1)
TL_ZIP_MAX_RATIO = env_int("TL_ZIP_MAX_RATIO", 100, minimum=1)
TL_IMAGE_MAX_PIXELS = env_int("TL_IMAGE_MAX_PIXELS", 40_000_000, minimum=1)
# Memory one training job may use; experiments whose estimate is larger are refused at once with the
# estimate, instead of failing hours later (or taking the machine down). Default: 80% of this
# machine's memory, on the assumption that web and training worker share the machine (bin/run).
TL_TRAINING_MEMORY_BYTES = env_int(
    "TL_TRAINING_MEMORY_BYTES", int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), minimum=1
)
TL_VALIDATION_FRACTION = env_float("TL_VALIDATION_FRACTION", 0.2, minimum=0.01, maximum=0.9)
# Share of each class's training images set aside as a test split when an upload has no test/
# folder (0 turns it off). The epoch is chosen on validation; the headline is measured on test.
TL_TEST_FRACTION = env_float("TL_TEST_FRACTION", 0.1, minimum=0.0, maximum=0.5)  # ingest.build.MAX_TEST_FRACTION

# --- Redis and Celery ---
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
if urlparse(REDIS_URL).scheme not in {"redis", "rediss", "redis+socket", "unix"}:
    raise ImproperlyConfigured(f"REDIS_URL={REDIS_URL!r} must be a redis://, rediss:// or redis+socket:// URL")

# The Celery broker: Redis (REDIS_URL) by default, or RabbitMQ (amqp://). Results, the cache and the
# rate limits stay on Redis either way (docs/decisions.md, "RabbitMQ as the broker").
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL
if urlparse(CELERY_BROKER_URL).scheme in {"amqp", "amqps", "pyamqp"}:
    TL_BROKER = "amqp"
elif CELERY_BROKER_URL == REDIS_URL:
    TL_BROKER = "redis"
else:
    # A second Redis for the broker alone would be one more thing to run for nothing.
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} must be an amqp:// or amqps:// URL (RabbitMQ); "
        "for Redis leave it unset and set REDIS_URL"
    )
# What a worker serves: "cpu" consumes the `training` queue, "gpu" the `training-gpu` queue (one
# worker process per GPU). The dashboard shows it for each worker (docs/decisions.md, "A GPU queue").
TL_WORKER_DEVICE = env_str("TL_WORKER_DEVICE", "cpu")
if TL_WORKER_DEVICE not in {"cpu", "gpu"}:
    raise ImproperlyConfigured(f"TL_WORKER_DEVICE={TL_WORKER_DEVICE!r} must be cpu or gpu")
# The training queue each experiment `device` goes to; "auto" is the CPU queue (docs/decisions.md, "A GPU queue").
# This host's measured choice of arithmetic per backbone and image size (workers/ml/precision.py):
# local to the host, since speeds are (docs/decisions.md, "Precision by measurement").
TL_PRECISION_CACHE = VAR_DIR / "precision.json"
TL_TRAINING_QUEUES = {"auto": "training", "cpu": "training", "gpu": "training-gpu"}
# Head-only jobs (a CPU bottleneck job whose features are cached) go to this queue, served by a worker
# that keeps TensorFlow loaded between jobs; empty: they go to `training` like any other
# (docs/decisions.md, "A warm worker for head-only jobs"). bin/run and docker-compose start its worker.
TL_WARM_QUEUE = env_str("TL_WARM_QUEUE", "training-warm").strip()
if TL_WARM_QUEUE in {*TL_TRAINING_QUEUES.values(), "default"}:
    raise ImproperlyConfigured(f"TL_WARM_QUEUE={TL_WARM_QUEUE!r} must be a queue of its own (or empty to turn it off)")
# Set on the warm worker's processes by bin/launch.py: keep a verifier process and TensorFlow loaded.
TL_WORKER_WARM = env_bool("TL_WORKER_WARM", False)
# The warm worker's child is replaced after this many jobs, or once its RSS passed this many MB
# after a job (Celery's --max-tasks-per-child and --max-memory-per-child).
TL_WARM_MAX_JOBS = env_int("TL_WARM_MAX_JOBS", 50, minimum=1)
TL_WARM_MAX_MB = env_int("TL_WARM_MAX_MB", 3072, minimum=256)
if TL_WORKER_WARM:
    CELERY_WORKER_MAX_TASKS_PER_CHILD = TL_WARM_MAX_JOBS
    CELERY_WORKER_MAX_MEMORY_PER_CHILD = TL_WARM_MAX_MB * 1024  # KiB

TL_TRAINING_TIME_LIMIT = env_int("TL_TRAINING_TIME_LIMIT", 6 * 3600, minimum=60)
TL_HEARTBEAT_SECONDS = 10
# A running job whose heartbeat is older than this is failed by the reaper as "worker lost".
TL_HEARTBEAT_STALE_SECONDS = env_int("TL_HEARTBEAT_STALE_SECONDS", 180, minimum=30)
# A queued job whose message is in no queue and held by no worker this long is re-sent by the reaper.
TL_QUEUED_ORPHAN_SECONDS = env_int("TL_QUEUED_ORPHAN_SECONDS", 600, minimum=30)
# A dataset ingest whose heartbeat is older than this is failed by the reaper (its process was killed).
TL_INGEST_STALE_SECONDS = env_int("TL_INGEST_STALE_SECONDS", 180, minimum=30)
# The hourly sweep removes leftovers untouched this long: staging folders no live process holds,
# uploads, dataset folders, feature caches and prediction images that nothing owns any more.
TL_SWEEP_AFTER_SECONDS = env_int("TL_SWEEP_AFTER_SECONDS", 6 * 3600, minimum=60)

# https://docs.celeryq.dev/en/stable/userguide/configuration.html
CELERY_RESULT_BACKEND = REDIS_URL
# JSON only: a pickle from the broker is code execution.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 24 * 3600
# Ack after the task ends so a worker killed mid-job or before starting a reserved job does not lose it;
# the conditional claim on the job row makes a second delivery a no-op
# (docs/decisions.md, "Late acks and a long visibility timeout").
CELERY_TASK_ACKS_LATE = True
# A child killed by the OS is a failed job (the reaper reports it), not a redelivery loop.
CELERY_TASK_REJECT_ON_WORKER_LOST = False
# One message per process at a time: queued jobs stay in Redis, in order, for whichever worker is free.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The longest a delivered message may stay unacked: a training run, plus one more for a reserved
# message waiting behind it.
TL_UNACKED_LIMIT_SECONDS = 2 * TL_TRAINING_TIME_LIMIT + 3600
if TL_BROKER == "redis":
    # Redis redelivers unacked messages after this, so that a long training is never delivered
    # twice while it runs it must exceed TL_UNACKED_LIMIT_SECONDS.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": TL_UNACKED_LIMIT_SECONDS,
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
    }
else:
    # Publisher confirms: a publish returns once RabbitMQ has the message, so "queued" means queued.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
# The Redis result backend takes its timeouts from these names, not from its transport options,
# and retries a lost connection 20 times (~20 s) by default: one quick retry, then fail.
CELERY_REDIS_SOCKET_TIMEOUT = 5
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": {"max_retries": 1, "interval_start": 0.2}}
# Fail fast when Redis is down so a request that enqueues answers with an error, not a hang.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = False
# Default time limits; training tasks set their own from TL_TRAINING_TIME_LIMIT.
CELERY_TASK_SOFT_TIME_LIMIT = 30 * 60
CELERY_TASK_TIME_LIMIT = 35 * 60
# Events let Flower and the dashboard see tasks as they happen.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# The queues whose messages the reaper looks through for lost training jobs.
TL_WATCHED_QUEUES = sorted(set(TL_TRAINING_QUEUES.values()) | ({TL_WARM_QUEUE} if TL_WARM_QUEUE else set()))
# RabbitMQ closes the channel of a delivery left unacked past its consumer_timeout (30 min by
# default) and redelivers it: with late acks that is every job longer than 30 min. RabbitMQ 3.12+
# reads this per-queue argument; older servers ignore it and need consumer_timeout in rabbitmq.conf
# (docs/decisions.md, "RabbitMQ as the broker"). Redis ignores queue arguments.
TL_QUEUE_ARGUMENTS = {"x-consumer-timeout": TL_UNACKED_LIMIT_SECONDS * 1000}
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name, queue_arguments=TL_QUEUE_ARGUMENTS)
    for name in (CELERY_TASK_DEFAULT_QUEUE, *TL_WATCHED_QUEUES)
]
# Task names keep the "workers.tasks." prefix of the module that once held them all (each app now has
# its own tasks.py): messages already queued under those names still find their task.
CELERY_TASK_ROUTES = {"workers.tasks.run_training_job": {"queue": "training"}}
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {"task": "workers.tasks.reap_stale_jobs", "schedule": 60.0},
    "reap-stale-ingests": {"task": "workers.tasks.reap_stale_ingests", "schedule": 60.0},
    "sweep-storage": {"task": "workers.tasks.sweep_storage", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- REST API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # DRF's JSON parser answers a deeply nested body ("[" x 50,000) with a RecursionError, a 500.
    "DEFAULT_PARSER_CLASSES": [
        "webapp.core.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {
        "predict": env_str("TL_PREDICT_THROTTLE", "600/minute"),
    },
    "EXCEPTION_HANDLER": "webapp.core.api.errors.exception_handler",
}
# --- Prediction endpoints and the in-process model cache (webapp/predictions) ---
TL_PREDICT_MAX_IMAGES = env_int("TL_PREDICT_MAX_IMAGES", 32, minimum=1)
if TL_PREDICT_MAX_IMAGES > DATA_UPLOAD_MAX_NUMBER_FILES:
    raise ImproperlyConfigured(f"TL_PREDICT_MAX_IMAGES must be at most {DATA_UPLOAD_MAX_NUMBER_FILES}")
TL_PREDICT_MAX_IMAGE_BYTES = env_int("TL_PREDICT_MAX_IMAGE_BYTES", 10 * 1024**2, minimum=1)
# The predict endpoints' own body cap, enforced while reading (webapp/core/api/parsers.py and
# webapp/core/uploads.py) in place of DATA_UPLOAD_MAX_MEMORY_SIZE; base64 inflates images by 4/3.
TL_PREDICT_MAX_BODY_BYTES = env_int("TL_PREDICT_MAX_BODY_BYTES", 64 * 1024**2, minimum=1024)
TL_PREDICT_MAX_TOP_K = 100
# Images one predict request may ask Grad-CAM heatmaps for (explain=true): each costs a forward and a
# backward pass, several times a plain prediction (docs/decisions.md, "Error analysis").
TL_EXPLAIN_MAX_IMAGES = env_int("TL_EXPLAIN_MAX_IMAGES", 4, minimum=1)
# Pixels one request may decode, summed over its images and counted from their headers before
# any is decoded (a JPEG counts at the reduced scale it is decoded at). Images are decoded one
# at a time and shrunk to the model's size at once, so this bounds CPU time per request; the
# memory of the largest single decode is bounded by TL_IMAGE_MAX_PIXELS.
TL_PREDICT_MAX_REQUEST_PIXELS = env_int("TL_PREDICT_MAX_REQUEST_PIXELS", 100_000_000, minimum=1)
# Requests of one web process that decode and predict at the same time; the others wait their
# turn, so N threads cannot each hold a full-size decode at once.
TL_PREDICT_CONCURRENCY = env_int("TL_PREDICT_CONCURRENCY", 2, minimum=1)
# Loaded models kept per web process: least recently used ones are dropped past either bound.
TL_SERVING_MAX_MODELS = env_int("TL_SERVING_MAX_MODELS", 4, minimum=1)
# Estimated as the model file's size times TL_SERVING_MEMORY_FACTOR (weights plus graph and buffers).
TL_SERVING_MAX_BYTES = env_int("TL_SERVING_MAX_BYTES", 2 * 1024**3, minimum=1)
TL_SERVING_MEMORY_FACTOR = env_float("TL_SERVING_MEMORY_FACTOR", 1.5, minimum=1.0, maximum=10.0)
SPECTACULAR_SETTINGS = {
    "TITLE": "TransferLab API",
    "DESCRIPTION": "Transfer-learning experiments on images: projects, datasets, experiments, models, predictions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Security (manage.py check --deploy) ---
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0, minimum=0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_TLS_PROXY") else None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # [request id] on each line: the id an API error answer quotes finds its traceback here.
    "filters": {"request_id": {"()": "webapp.core.request_id.RequestIdLogFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env_str("TL_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
