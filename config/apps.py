from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _


class ParleyConfig(AppConfig):
    """The `config` app: SystemSetting, operations and health."""

    name = "config"
    verbose_name = _("Configuration")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from config import checks, signals, slow_queries  # noqa: F401  (checks and handlers)

        connection_created.connect(slow_queries.install, dispatch_uid="parley-slow-queries")


class ParleyAdminConfig(AdminConfig):
    """Django's admin with a site that admits only the ADMIN role."""

    default_site = "config.admin_site.ParleyAdminSite"
