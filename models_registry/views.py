"""Personal models at /models/: list, add, edit, delete, test connection, fetch model ids."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import DeleteView, ListView
from django.views.generic.edit import CreateView, UpdateView

from config.services import get_system_setting
from models_registry import selectors, services
from models_registry.forms import PersonalModelForm
from models_registry.models import ApiKeyUnreadable, ModelConfig


class PersonalModelMixin(LoginRequiredMixin):
    """Every personal-model view sees only the requesting user's rows: others get 404."""

    def get_queryset(self) -> QuerySet[ModelConfig]:
        return selectors.personal_models(self.request.user)


class PersonalModelsAllowedMixin:
    """Adding, editing and testing need the admin's permission for personal models."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated and not services.personal_models_allowed():
            raise PermissionDenied(_("Your administrator has turned off personal models."))
        return super().dispatch(request, *args, **kwargs)


class ModelListView(PersonalModelMixin, ListView):
    template_name = "models_registry/model_list.html"
    context_object_name = "personal_models"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        setting = get_system_setting()
        context["system_models"] = selectors.system_models_for_users()
        context["show_system_urls"] = not setting.hide_system_model_urls
        context["personal_allowed"] = setting.allow_personal_models
        return context


@method_decorator(sensitive_post_parameters("api_key"), name="dispatch")
class PersonalModelFormMixin(PersonalModelsAllowedMixin, PersonalModelMixin):
    form_class = PersonalModelForm
    template_name = "models_registry/model_form.html"
    success_url = reverse_lazy("models_registry:list")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "fetch_models" in request.POST:
            return self.fetch_models()
        return super().post(request, *args, **kwargs)

    def fetch_models(self) -> HttpResponse:
        """Re-show the form with the upstream's model ids as suggestions; saves nothing."""
        self.object = self.get_object() if self.kwargs.get("pk") else None
        form = self.get_form()
        form.is_valid()  # run field cleaning so the URL is checked and the key read
        api_url = form.cleaned_data.get("api_url")
        fetched: list[str] = []
        if api_url and "api_url" not in form.errors:
            form.errors.clear()
            try:
                api_key = form.cleaned_data.get("api_key") or (
                    self.object.get_api_key() if self.object else ""
                )
                fetched = services.fetch_upstream_model_ids(
                    api_url=api_url, api_key=api_key, personal=True
                )
            except (ValidationError, ApiKeyUnreadable) as error:
                message = " ".join(error.messages) if isinstance(error, ValidationError) else error
                messages.error(self.request, str(message))
            else:
                messages.info(
                    self.request,
                    _("Found %(count)d models: pick one in the model id field.")
                    % {"count": len(fetched)},
                )
        if fetched:
            form.fields["model"].widget.attrs["list"] = "fetched-models"
        return self.render_to_response(self.get_context_data(form=form, fetched_models=fetched))

    def form_valid(self, form: PersonalModelForm) -> HttpResponse:
        model_config = form.instance
        model_config.owner = self.request.user
        try:
            services.model_config_save(
                model_config=model_config,
                new_api_key=form.new_api_key,
                changed_fields=form.changed_data,
                actor=self.request.user,
                request=self.request,
            )
        except ValidationError as error:
            form.add_error(None, error)
            return self.form_invalid(form)
        self.object = model_config
        messages.success(self.request, _("Saved %(name)s.") % {"name": model_config.name})
        return HttpResponseRedirect(self.get_success_url())


class ModelCreateView(PersonalModelFormMixin, CreateView):
    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        kwargs["instance"] = ModelConfig(owner=self.request.user)
        return kwargs


class ModelUpdateView(PersonalModelFormMixin, UpdateView):
    pass


class ModelDeleteView(PersonalModelMixin, DeleteView):
    template_name = "models_registry/model_confirm_delete.html"
    success_url = reverse_lazy("models_registry:list")

    def form_valid(self, form: Any) -> HttpResponse:
        name = self.object.name
        services.model_config_delete(
            model_config=self.object, actor=self.request.user, request=self.request
        )
        messages.success(
            self.request, _("Deleted %(name)s. Chats that used it are kept.") % {"name": name}
        )
        return HttpResponseRedirect(self.get_success_url())


class ModelTestConnectionView(PersonalModelsAllowedMixin, PersonalModelMixin, View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        model_config = get_object_or_404(self.get_queryset(), pk=pk)
        result = services.check_connection(model_config)
        (messages.success if result.ok else messages.error)(request, result.message)
        return HttpResponseRedirect(reverse("models_registry:list"))


class AddDemoModelView(LoginRequiredMixin, View):
    """POST `/models/demo/` (admins): add the mock model and say whether it answers."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_admin:
            raise PermissionDenied
        model_config = services.add_demo_model(actor=request.user, request=request)
        result = services.check_connection(model_config)
        if result.ok:
            messages.success(request, _("The demo model is ready: send your first message below."))
        else:
            messages.warning(
                request,
                _(
                    "The demo model was added, but it does not answer yet (%(reason)s). "
                    "Start it with “make demo” in a terminal, then send a message."
                )
                % {"reason": result.message},
            )
        return HttpResponseRedirect(reverse("chat:home"))
