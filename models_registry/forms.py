"""The model form: the API key is write-only (blank keeps the stored key)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from models_registry.models import ModelConfig


class ModelConfigForm(forms.ModelForm):
    api_url = forms.URLField(
        label=_("API base URL"),
        max_length=500,
        assume_scheme="https",
        help_text=_("The OpenAI-compatible base URL, e.g. https://api.openai.com/v1"),
    )
    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Leave blank to keep the stored key. It is never shown again after saving."),
    )
    clear_api_key = forms.BooleanField(label=_("Remove the stored API key"), required=False)

    class Meta:
        model = ModelConfig
        fields = [
            "name",
            "api_url",
            "api_key",
            "model",
            "api_id",
            "context_window",
            "max_output_tokens",
            "system_prompt",
            "is_active",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The widget must never carry the stored key back to the browser.
        self.initial["api_key"] = ""
        if self.instance.pk and self.instance.api_key:
            self.fields["api_key"].help_text = _("Stored: %(mask)s. Leave blank to keep it.") % {
                "mask": self.instance.api_key_mask
            }

    def clean_api_id(self) -> str:
        # Blank keeps the id the model has (a new one gets its id from the name on save):
        # tools that name the model by it must not break because a form left it empty.
        return self.cleaned_data.get("api_id") or self.instance.api_id

    @property
    def changed_data(self) -> list[str]:
        changed = super().changed_data
        if "api_id" in changed and self.cleaned_data.get("api_id") == self.initial.get("api_id"):
            changed = [name for name in changed if name != "api_id"]
        return changed

    @property
    def new_api_key(self) -> str | None:
        """The key typed into the form, "" to remove the stored one, None to keep it."""
        if self.cleaned_data.get("clear_api_key"):
            return ""
        return self.cleaned_data.get("api_key") or None

    def _post_clean(self) -> None:
        # Construct the instance without touching the stored key; the service sets it.
        typed = self.cleaned_data.pop("api_key", "")
        super()._post_clean()
        self.cleaned_data["api_key"] = typed


class PersonalModelForm(ModelConfigForm):
    """A user's own model: the URL must pass the endpoint safety check."""

    def clean_api_url(self) -> str:
        from models_registry.services import check_personal_endpoint

        api_url = self.cleaned_data["api_url"]
        check_personal_endpoint(api_url)
        return api_url
