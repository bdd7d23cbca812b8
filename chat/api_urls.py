"""Parley's OpenAI-compatible API, mounted at /v1/ (described in static/api/openapi.json)."""

from django.urls import path, re_path, register_converter

from chat import api_views


class AnyTextConverter:
    """Like ``path`` (ids such as "personal/x" hold a slash), newlines included."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyTextConverter, "any")

app_name = "api"

urlpatterns = [
    path("models", api_views.ModelListView.as_view(), name="models"),
    path("models/<any:model_id>", api_views.ModelDetailView.as_view(), name="model"),
    path("chat/completions", api_views.ChatCompletionsView.as_view(), name="chat_completions"),
    # [\s\S], not ".": a path with a newline still gets the API's JSON answer.
    re_path(r"^[\s\S]*$", api_views.ApiNotFoundView.as_view()),
]
