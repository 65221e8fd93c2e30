"""TokenScope settings: one module, every value from the environment (see .env.example)."""

import os
import sys
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """The variable's value; unset and empty (as in a copied .env.example) both mean the default."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


DEBUG = env_bool("DEBUG", default=False)
TESTING = "pytest" in sys.modules or env_bool("TOKENSCOPE_TESTING")

_DEV_SECRET = "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"  # noqa: S105
SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    # Type-checking imports settings too; it needs no secret.
    if not (DEBUG or TESTING or "mypy" in sys.modules):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it (50+ random characters) or set DEBUG=1 "
            "for local development."
        )
    SECRET_KEY = _DEV_SECRET

BASE_DOMAIN = env("TOKENSCOPE_BASE_DOMAIN", "localhost")
REGION = env("TOKENSCOPE_REGION", "us-east")
# The scheme and port used to build absolute URLs to tenant hosts (emails, redirects).
PUBLIC_SCHEME = env("TOKENSCOPE_PUBLIC_SCHEME", "http" if DEBUG or TESTING else "https")
PUBLIC_PORT = env("TOKENSCOPE_PUBLIC_PORT", "8000" if DEBUG else "")

ALLOWED_HOSTS = [BASE_DOMAIN, f".{BASE_DOMAIN}"]
if TESTING:
    ALLOWED_HOSTS.append("testserver")

ANTHROPIC_UPSTREAM_URL = env("ANTHROPIC_UPSTREAM_URL", "https://api.anthropic.com")
KEK_PROVIDER = env("TOKENSCOPE_KEK_PROVIDER", "local")
# Days between a workspace deletion request and its purge (at most 14: see docs/privacy.md).
PRIVACY_DELETION_GRACE_DAYS = min(env_int("PRIVACY_DELETION_GRACE_DAYS", 14), 14)
# Local KEK (A256KW): base64 of 32 bytes; older versions stay readable for `rewrap_keys`.
_DEV_LOCAL_KEK = "ZGV2LW9ubHkta2VrLWZvci10b2tlbnNjb3BlLXRlc3Q="  # base64 of 32 fixed bytes
LOCAL_KEK = env("TOKENSCOPE_LOCAL_KEK")
LOCAL_KEK_VERSION = env("TOKENSCOPE_LOCAL_KEK_VERSION", "1")
if not LOCAL_KEK and (DEBUG or TESTING):
    LOCAL_KEK, LOCAL_KEK_VERSION = _DEV_LOCAL_KEK, "dev"
# Older local KEK versions, "version=base64,version=base64"; they only unwrap.
LOCAL_KEK_PREVIOUS = dict(
    item.strip().split("=", 1)
    for item in env("TOKENSCOPE_LOCAL_KEK_PREVIOUS").split(",")
    if item.strip()
)
# Versioned Key Vault key id: https://<vault>.vault.azure.net/keys/<name>/<version>.
AZURE_KEYVAULT_KEY_ID = env("AZURE_KEYVAULT_KEY_ID")
# How long a decrypted Anthropic key stays in this process's memory.
KEY_CACHE_TTL_SECONDS = env_int("KEY_CACHE_TTL_SECONDS", 300)

# Paddle Billing (see docs/billing.md). Secrets: comma-separated, newest first (rotation).
PADDLE_API_KEY = env("PADDLE_API_KEY")
PADDLE_ENVIRONMENT = env("PADDLE_ENVIRONMENT", "sandbox")
PADDLE_WEBHOOK_SECRETS = [s.strip() for s in env("PADDLE_WEBHOOK_SECRETS").split(",") if s.strip()]
PADDLE_CLIENT_TOKEN = env("PADDLE_CLIENT_TOKEN")
PADDLE_PAST_DUE_GRACE_DAYS = env_int("PADDLE_PAST_DUE_GRACE_DAYS", 7)

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "accounts",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "billing",
    "privacy",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "accounts",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "audit",
    "proxy",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "tokenscope.urls_public"
ROOT_URLCONF = "tokenscope.urls_tenant"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False

MIDDLEWARE = [
    "tenants.middleware.TenantHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "tokenscope.lib.security.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.TenantAccessMiddleware",
]

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
                "tenants.context_processors.tenancy",
            ]
        },
    }
]

WSGI_APPLICATION = "tokenscope.wsgi.application"
ASGI_APPLICATION = "tokenscope.asgi.application"

DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tokenscope")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
DATABASES["default"]["CONN_MAX_AGE"] = 0 if TESTING else env_int("DATABASE_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
if TESTING:
    # Tests flush their Redis database: keep it apart from the one a developer runs with.
    REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/" + env("TOKENSCOPE_TEST_REDIS_DB", "15")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing cost only slows the suite; the production hasher is Django's default PBKDF2.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[TokenScope] "
ACCOUNT_RATE_LIMITS = {
    # Login failures per account and per IP; ASVS 2.2.1 asks for at most 100 an hour.
    "login_failed": "10/m/ip,5/5m/key",
    "login": "30/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "signup": "20/m/ip",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# Operators must set up TOTP before the admin site opens (ASVS 4.3.1). Tests of admin pages that
# are not about MFA turn it off; a test with it on proves the rule.
OPERATOR_MFA_REQUIRED = env_bool("OPERATOR_MFA_REQUIRED", default=not TESTING)
MFA_TOTP_ISSUER = "AI TokenScope"

SESSION_COOKIE_AGE = 12 * 60 * 60
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG and not TESTING:
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    CSRF_TRUSTED_ORIGINS = [f"https://{BASE_DOMAIN}", f"https://*.{BASE_DOMAIN}"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".local" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "TokenScope <no-reply@aitokenscope.com>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
# A task whose worker died unacknowledged is delivered again after this many seconds; workers
# look for such tasks about as often as they can become due.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 2 * 60 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": min(10, CELERY_VISIBILITY_TIMEOUT),
    "unacked_restore_throttle": 1 if CELERY_VISIBILITY_TIMEOUT < 600 else 10,
}
CELERY_TIMEZONE = "UTC"
# Entries without "tenant_schemas" run once in every tenant's schema (TenantAwareScheduler).
CELERY_BEAT_SCHEDULE = {
    "batches-meter": {
        "task": "proxy.tasks.batches_meter",
        "schedule": 60.0,
    },
    "privacy-retention-purge": {
        "task": "privacy.tasks.retention_purge_schedule",
        "schedule": crontab(hour=2, minute=7),
        "tenant_schemas": ["public"],
    },
    "privacy-deletions-run": {
        "task": "privacy.tasks.deletions_run",
        "schedule": crontab(hour=4, minute=23),
        "tenant_schemas": ["public"],
    },
    "privacy-requests-expire": {
        "task": "privacy.tasks.privacy_requests_expire",
        "schedule": crontab(minute=13),
        "tenant_schemas": ["public"],
    },
    "audit-export-files-cleanup": {
        "task": "audit.tasks.exports_files_cleanup",
        "schedule": crontab(hour=3, minute=41),
    },
    "tenant-heartbeat": {
        "task": "tenants.tasks.tenant_heartbeat",
        "schedule": 300.0,
    },
    "billing-reconcile-nightly": {
        "task": "billing.tasks.billing_reconcile",
        "schedule": crontab(hour=3, minute=17),
        "tenant_schemas": ["public"],
    },
    "billing-entitlements-hourly": {
        "task": "billing.tasks.entitlements_refresh",
        "schedule": crontab(minute=41),
        "tenant_schemas": ["public"],
    },
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "TokenScope API", "VERSION": "1.0.0"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Access logs would carry query strings; our own request log omits secrets.
        "uvicorn.access": {"level": "WARNING"},
        # The Azure SDK logs every Key Vault request at INFO; keep only warnings.
        "azure.core.pipeline.policies.http_logging_policy": {"level": "WARNING"},
    },
}

SILENCED_SYSTEM_CHECKS: list[str] = []

# Networks of reverse proxies whose X-Forwarded-For we believe (comma-separated CIDRs).
TRUSTED_PROXIES = [
    net.strip() for net in env("TOKENSCOPE_TRUSTED_PROXIES").split(",") if net.strip()
]

# --- Proxy ----------------------------------------------------------------------------------------
UPSTREAM_CONNECT_TIMEOUT = float(env("UPSTREAM_CONNECT_TIMEOUT", "10"))
UPSTREAM_READ_TIMEOUT = float(env("UPSTREAM_READ_TIMEOUT", "600"))
UPSTREAM_MAX_CONNECTIONS = env_int("UPSTREAM_MAX_CONNECTIONS", 2000)
PROXY_MAX_BODY_BYTES = env_int("PROXY_MAX_BODY_BYTES", 32 * 1024 * 1024)
PROXY_MAX_BATCH_BODY_BYTES = env_int("PROXY_MAX_BATCH_BODY_BYTES", 256 * 1024 * 1024)
# Longest a resolved proxy key stays cached (a change notice by pub/sub drops it at once).
PROXY_KEY_CACHE_SECONDS = float(env("PROXY_KEY_CACHE_SECONDS", "60"))
# Usage records are written in small batches; this is the longest a record waits in memory.
RECORD_FLUSH_INTERVAL_MS = env_int("RECORD_FLUSH_INTERVAL_MS", 20 if TESTING else 100)
# Records that could not be written (database down) wait here on disk until it is back.
RECORD_SPOOL_DIR = Path(env("RECORD_SPOOL_DIR", str(BASE_DIR / ".local" / "spool")))
