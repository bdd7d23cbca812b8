from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ModelsRegistryConfig(AppConfig):
    name = "models_registry"
    verbose_name = _("Models")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from models_registry import key_management

        post_migrate.connect(
            key_management.ensure_encryption_ready,
            sender=self,
            dispatch_uid="parley-encryption-ready",
        )
