"""Input for the account pages: Django's standard auth forms, with throttling added."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

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
        label=_("E-mail (optional)"),
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")
