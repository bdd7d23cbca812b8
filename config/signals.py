"""Cache invalidation for SystemSetting: the one decoupled concern handled by signals."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from config.models import SystemSetting
from config.services import invalidate_system_setting_cache


@receiver(post_save, sender=SystemSetting, dispatch_uid="parley-system-setting-invalidate")
def _system_setting_saved(sender: type[SystemSetting], **kwargs: Any) -> None:
    invalidate_system_setting_cache()
