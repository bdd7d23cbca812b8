"""Chat pages. For now the home page, which says which models the user can chat with."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView

from chat.selectors import models_for_user


class HomeView(LoginRequiredMixin, TemplateView):
    template_name = "chat/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["available_models"] = models_for_user(self.request.user)
        return context
