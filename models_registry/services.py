"""Model configurations: saving (with audit), and talking to their upstream safely."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from accounts.audit import audit_record
from accounts.models import AuditAction
from config.services import get_system_setting
from models_registry import endpoints
from models_registry.client import UpstreamClient, UpstreamError, get_shared_session
from models_registry.models import ApiKeyUnreadable, ModelConfig

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)


def _scope(model_config: ModelConfig) -> str:
    return "system" if model_config.is_system else "personal"


def personal_models_allowed() -> bool:
    return get_system_setting().allow_personal_models


def check_personal_endpoint(api_url: str) -> endpoints.CheckedEndpoint:
    """The safety check for a URL typed by a user; raises ValidationError with the reason."""
    try:
        return endpoints.check_endpoint(
            api_url, allow_private=get_system_setting().allow_private_endpoints
        )
    except endpoints.UnsafeEndpoint as error:
        raise ValidationError(str(error), code="unsafe_endpoint") from None


@sensitive_variables("new_api_key")
def model_config_save(
    *,
    model_config: ModelConfig,
    new_api_key: str | None,
    changed_fields: list[str],
    actor: User | None,
    request: HttpRequest | None = None,
) -> ModelConfig:
    """Save a model; ``new_api_key`` None keeps the stored key, "" removes it."""
    creating = model_config.pk is None
    with transaction.atomic():
        if new_api_key is not None:
            model_config.set_api_key(new_api_key)
        model_config.full_clean()
        model_config.save()
        target = f"model {model_config.pk}: {model_config.name}"
        detail = {"scope": _scope(model_config), "model_id": model_config.pk}
        fields = sorted(set(changed_fields) - {"api_key", "clear_api_key"})
        if creating:
            audit_record(
                AuditAction.MODEL_CREATE, actor=actor, target=target, request=request, detail=detail
            )
        elif fields:
            audit_record(
                AuditAction.MODEL_UPDATE,
                actor=actor,
                target=target,
                request=request,
                detail={**detail, "changed": fields},
            )
        if new_api_key is not None and (new_api_key or not creating):
            audit_record(
                AuditAction.API_KEY_SET,
                actor=actor,
                target=target,
                request=request,
                detail={**detail, "removed": new_api_key == ""},
            )
    return model_config


def model_config_delete(
    *, model_config: ModelConfig, actor: User | None, request: HttpRequest | None = None
) -> None:
    """Delete a model. Chats that used it keep their messages (their model becomes empty)."""
    with transaction.atomic():
        audit_record(
            AuditAction.MODEL_DELETE,
            actor=actor,
            target=f"model {model_config.pk}: {model_config.name}",
            request=request,
            detail={"scope": _scope(model_config), "model_id": model_config.pk},
        )
        model_config.delete()


@sensitive_variables("api_key")
def _client(*, api_url: str, api_key: str, personal: bool) -> UpstreamClient:
    """A client for the URL. Personal endpoints are checked and pinned to the checked IP."""
    if personal:
        checked = check_personal_endpoint(api_url)
        return UpstreamClient(api_url, api_key, session=endpoints.pinned_session(checked))
    return UpstreamClient(api_url, api_key, session=get_shared_session())


def upstream_client_for(model_config: ModelConfig) -> UpstreamClient:
    """The client for a saved model; raises ApiKeyUnreadable or ValidationError (unsafe URL)."""
    return _client(
        api_url=model_config.api_url,
        api_key=model_config.get_api_key(),
        personal=not model_config.is_system,
    )


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


def check_connection(model_config: ModelConfig) -> ConnectionCheck:
    """Ask the model for one token: proves the URL, the key and the model id together."""
    try:
        client = upstream_client_for(model_config)
        started = time.monotonic()
        client.complete(
            model=model_config.model,
            messages=[{"role": "user", "content": "Reply with OK."}],
            max_tokens=1,
        )
    except ApiKeyUnreadable as error:
        return ConnectionCheck(False, str(error))
    except ValidationError as error:
        return ConnectionCheck(False, " ".join(error.messages))
    except UpstreamError as error:
        logger.info("connection test of model %s failed: %s", model_config.pk, error.kind)
        return ConnectionCheck(False, str(error.user_message))
    elapsed_ms = round((time.monotonic() - started) * 1000)
    return ConnectionCheck(
        True,
        _("Connection works: %(name)s answered in %(ms)d ms.")
        % {"name": model_config.name, "ms": elapsed_ms},
    )


@sensitive_variables("api_key")
def fetch_upstream_model_ids(*, api_url: str, api_key: str, personal: bool) -> list[str]:
    """The model ids the upstream lists at GET /models; raises ValidationError with a reason."""
    try:
        ids = _client(api_url=api_url, api_key=api_key, personal=personal).list_models()
    except UpstreamError as error:
        logger.info("fetching models from an upstream failed: %s", error.kind)
        raise ValidationError(str(error.user_message), code="upstream") from None
    return sorted(set(ids))


DEMO_MODEL_NAME = "Demo (mock model)"


def add_demo_model(*, actor: User, request: HttpRequest | None = None) -> ModelConfig:
    """The onboarding's one-click system model: the local mock server (`make demo`).

    Idempotent: a second click reuses (and re-activates) the demo model. Saved through
    `model_config_save`, so it is audited like any model an admin adds.
    """
    existing = ModelConfig.objects.system().filter(name__iexact=DEMO_MODEL_NAME).first()
    if existing is not None:
        if not existing.is_active:
            existing.is_active = True
            model_config_save(
                model_config=existing,
                new_api_key=None,
                changed_fields=["is_active"],
                actor=actor,
                request=request,
            )
        return existing
    model_config = ModelConfig(
        name=DEMO_MODEL_NAME,
        api_url=settings.PARLEY_DEMO_MODEL_URL,
        model="mock-model",
        context_window=8192,
        max_output_tokens=1024,
    )
    return model_config_save(
        model_config=model_config,
        new_api_key=None,
        changed_fields=["name", "api_url", "model"],
        actor=actor,
        request=request,
    )
