"""Parley's OpenAI-compatible API, mounted at /v1/ (described in static/api/openapi.json)."""

from django.urls import path, re_path

from chat import api_views

app_name = "api"

urlpatterns = [
    path("models", api_views.ModelListView.as_view(), name="models"),
    path("models/<path:model_id>", api_views.ModelDetailView.as_view(), name="model"),
    path("chat/completions", api_views.ChatCompletionsView.as_view(), name="chat_completions"),
    re_path(r"^.*$", api_views.ApiNotFoundView.as_view()),
]
