"""Account pages. Thin: forms validate, services act."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import translation
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import FormView, TemplateView

from accounts import api_tokens, services, usage
from accounts.backends import PARLEY_BACKEND
from accounts.forms import (
    ApiChatsForm,
    ApiTokenForm,
    LoginForm,
    PreferencesForm,
    SignupForm,
    ThemeForm,
)
from accounts.models import ApiToken
from config.services import get_system_setting


class SignupView(FormView):
    template_name = "accounts/signup.html"
    form_class = SignupForm

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.PARLEY_SINGLE_USER or request.user.is_authenticated:
            return redirect(settings.LOGIN_REDIRECT_URL)
        if not services.signup_is_open():
            return self._closed(request)
        return super().dispatch(request, *args, **kwargs)

    def _closed(self, request: HttpRequest) -> HttpResponse:
        return render(request, "accounts/signup_closed.html", status=403)

    def form_valid(self, form: SignupForm) -> HttpResponse:
        try:
            user = services.user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data.get("email", ""),
                password=form.cleaned_data["password1"],
                request=self.request,
            )
        except services.SignupClosed:
            return self._closed(self.request)
        login(self.request, user, backend=PARLEY_BACKEND)
        if not user.approved:
            return redirect("accounts:pending")
        messages.success(self.request, _("Welcome to Parley, %(name)s.") % {"name": user.username})
        return redirect(settings.LOGIN_REDIRECT_URL)


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.PARLEY_SINGLE_USER:
            return redirect(settings.LOGIN_REDIRECT_URL)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["signup_open"] = services.signup_is_open()
        return context

    def form_invalid(self, form: LoginForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.locked_seconds:
            response.status_code = 429
            response["Retry-After"] = str(form.locked_seconds)
        return response


class LogoutView(auth_views.LogoutView):
    """POST only (Django's default since 5.0): a link or image cannot log anyone out."""

    http_method_names = ["post", "options"]


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("chat:home")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.PARLEY_SINGLE_USER:
            return redirect(settings.LOGIN_REDIRECT_URL)
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        services.password_changed(user=form.user, request=self.request)
        messages.success(self.request, _("Your password was changed."))
        return response


class PendingApprovalView(LoginRequiredMixin, TemplateView):
    template_name = "accounts/pending.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.approved:
            return HttpResponseRedirect(reverse_lazy("chat:home"))
        return super().get(request, *args, **kwargs)


class AccountPageMixin(LoginRequiredMixin):
    """`/accounts/`: who you are, your token usage, the theme and whether API chats are kept.

    Each of the page's forms posts to its own view; the view that received the POST
    passes its bound form as `form`, the other form shows the saved value. Only the
    requesting user's own usage is read (`usage.usage_for_user`).
    """

    template_name = "accounts/account.html"
    form_context_name: str

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context[self.form_context_name] = context["form"]
        context.setdefault(
            "api_chats_form", ApiChatsForm(initial={"store_api_chats": user.store_api_chats})
        )
        context.setdefault("theme_form", ThemeForm(initial={"theme": user.theme}))
        context["usage"] = usage.usage_for_user(user)
        context["quota"] = get_system_setting().daily_token_quota
        return context


class AccountView(AccountPageMixin, FormView):
    """The page itself, and the "Keep API conversations" form."""

    form_class = ApiChatsForm
    form_context_name = "api_chats_form"

    def get_initial(self) -> dict[str, Any]:
        return {"store_api_chats": self.request.user.store_api_chats}

    def form_valid(self, form: ApiChatsForm) -> HttpResponse:
        enabled = form.cleaned_data["store_api_chats"]
        services.user_set_store_api_chats(user=self.request.user, enabled=enabled)
        if enabled:
            messages.success(self.request, _("Conversations made through the API will be kept."))
        else:
            messages.success(
                self.request, _("Conversations made through the API will not be kept.")
            )
        return redirect("accounts:account")


class ThemeView(AccountPageMixin, FormView):
    """POST `/accounts/theme/`: the "Appearance" form; back to the account page (PRG)."""

    http_method_names = ["post", "options"]
    form_class = ThemeForm
    form_context_name = "theme_form"

    def form_valid(self, form: ThemeForm) -> HttpResponse:
        services.user_set_theme(user=self.request.user, theme=form.cleaned_data["theme"])
        messages.success(self.request, _("Your theme is saved."))
        return redirect("accounts:account")

    def form_invalid(self, form: ThemeForm) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class PreferencesView(LoginRequiredMixin, FormView):
    """`/accounts/preferences/`: language, theme, default model, Enter-to-send, system prompt."""

    template_name = "accounts/preferences.html"
    form_class = PreferencesForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "instance": self.request.user}

    def form_valid(self, form: PreferencesForm) -> HttpResponse:
        services.user_save_preferences(user=form.save(commit=False), changed=form.changed_data)
        response = redirect("accounts:preferences")
        language = form.cleaned_data["language"]
        if "language" in form.changed_data:
            # The cookie too, so the choice also holds on the log-in page after log-out.
            if language:
                response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, samesite="Lax")
                translation.activate(language)  # the confirmation below in the new language
            else:
                response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
        messages.success(self.request, _("Your preferences are saved."))
        return response

    def form_invalid(self, form: PreferencesForm) -> HttpResponse:
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class ApiTokenScopedMixin(LoginRequiredMixin):
    """Every token view sees only the requesting user's tokens: others get 404."""

    def get_queryset(self) -> QuerySet[ApiToken]:
        return api_tokens.tokens_for_user(self.request.user)


class ApiTokenListView(ApiTokenScopedMixin, FormView):
    """The user's tokens and the form that creates one.

    A created token is shown in the POST response itself, never stored in the session or
    put in a redirect, and the response is marked no-store: it exists on this one page.
    """

    template_name = "accounts/api_tokens.html"
    form_class = ApiTokenForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["tokens"] = self.get_queryset()
        # Where the OpenAI-compatible gateway answers, as this browser reaches the server.
        context["api_base_url"] = f"{self.request.scheme}://{self.request.get_host()}/v1"
        return context

    def form_valid(self, form: ApiTokenForm) -> HttpResponse:
        try:
            token, raw_token = api_tokens.create_api_token(
                user=self.request.user,
                name=form.cleaned_data["name"],
                expires_at=form.expires_at(),
                request=self.request,
            )
        except ValidationError as error:
            form.add_error(None, error)
            return self.form_invalid(form)
        messages.success(self.request, _("Created the token %(name)s.") % {"name": token.name})
        response = self.render_to_response(
            self.get_context_data(form=self.form_class(), new_token=token, raw_token=raw_token)
        )
        response["Cache-Control"] = "no-store"
        return response

    def form_invalid(self, form: ApiTokenForm) -> HttpResponse:
        messages.error(self.request, _("The token was not created: check the form."))
        response = super().form_invalid(form)
        response.status_code = 400
        return response


class ApiTokenRevokeView(ApiTokenScopedMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        token = api_tokens.get_token_for_user(request.user, pk)
        api_tokens.revoke_api_token(token=token, actor=request.user, request=request)
        messages.success(
            request,
            _("Revoked the token %(name)s: programs using it can no longer connect.")
            % {"name": token.name},
        )
        return redirect("accounts:api_tokens")
