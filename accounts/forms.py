"""Input for the account pages: Django's standard auth forms with throttling, API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.utils import timezone
from django.utils.translation import get_language_info, gettext_lazy, ngettext
from django.utils.translation import gettext as _

from accounts.audit import client_ip
from accounts.models import AuditAction, User
from accounts.throttle import LoginThrottle


class ThrottledLoginMixin:
    """Refuse log-in for a username + IP pair after repeated failures.

    A locked pair is refused before the password is checked, so a locked attacker
    learns nothing and costs us no password hashing.
    """

    locked_seconds: int = 0

    def clean(self) -> dict[str, Any]:
        from accounts.audit import audit_record

        username = self.data.get("username", "") or ""
        throttle = LoginThrottle(username, client_ip(self.request))
        self.locked_seconds = throttle.seconds_locked()
        if self.locked_seconds:
            raise self._locked_error()
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if username and self.data.get("password") and throttle.register_failure():
                self.locked_seconds = throttle.seconds_locked()
                audit_record(
                    AuditAction.LOGIN_LOCKED,
                    target=username[:150],
                    request=self.request,
                    detail={"lockout_seconds": throttle.lockout_seconds},
                )
            raise error
        throttle.reset()
        return cleaned

    def _locked_error(self) -> forms.ValidationError:
        minutes = max(1, round(self.locked_seconds / 60))
        return forms.ValidationError(
            ngettext(
                "Too many failed log-in attempts. Try again in %(minutes)d minute.",
                "Too many failed log-in attempts. Try again in %(minutes)d minutes.",
                minutes,
            )
            % {"minutes": minutes},
            code="locked",
        )


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass


class SignupForm(UserCreationForm):
    """Username, optional e-mail, password1/password2: Django's standard field names."""

    email = forms.EmailField(
        label=gettext_lazy("E-mail (optional)"),
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


API_TOKEN_EXPIRY_DAYS = (7, 30, 90, 365)


def _expiry_choices() -> list[tuple[str, str]]:
    # A callable, so the labels are translated per request, not once at import.
    return [("", _("Never"))] + [
        (str(days), ngettext("In %(days)d day", "In %(days)d days", days) % {"days": days})
        for days in API_TOKEN_EXPIRY_DAYS
    ]


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=100,
        help_text=gettext_lazy("What will use it, for example “laptop scripts”."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    expires_in_days = forms.TypedChoiceField(
        label=gettext_lazy("Expires"),
        choices=_expiry_choices,
        coerce=int,
        empty_value=None,
        required=False,
    )

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None


class ApiChatsForm(forms.Form):
    """The account page's one setting: whether the /v1 gateway keeps API conversations.

    A plain form (a ModelForm would change request.user before the service runs); the
    label and help text are the model field's.
    """

    store_api_chats = User._meta.get_field("store_api_chats").formfield()


class ThemeForm(forms.Form):
    """The account page's "Appearance" setting; label, choices and help are the model's."""

    theme = User._meta.get_field("theme").formfield()


class PreferencesForm(forms.ModelForm):
    """The Preferences page: language, theme, default model, Enter-to-send, system prompt.

    The default model can be any model the user may chat with (system or their own);
    the field's queryset is narrowed to those in ``__init__``.
    """

    class Meta:
        model = User
        fields = ["language", "theme", "default_model", "enter_to_send", "system_prompt"]
        widgets = {"system_prompt": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from chat.selectors import models_for_user

        # Each language named in itself, as the top bar's switcher does.
        self.fields["language"].choices = [
            ("", _("Browser's language")),
            *((code, get_language_info(code)["name_local"]) for code, _name in settings.LANGUAGES),
        ]
        allowed = [m.pk for m in models_for_user(self.instance)]
        field = self.fields["default_model"]
        field.queryset = field.queryset.filter(pk__in=allowed).order_by("owner_id", "name")
        field.empty_label = _("The administrator's default")
