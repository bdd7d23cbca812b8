"""Account pages. Thin: forms validate, services act."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.views.generic import FormView, TemplateView

from accounts import services
from accounts.forms import LoginForm, SignupForm


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
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
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
