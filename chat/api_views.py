"""The /v1 views: thin, JSON in and out, OpenAI's shapes (see chat.gateway), in English."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import translation
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from chat import gateway
from chat.gateway import ApiError
from config.i18n import API_LANGUAGE


def error_response(error: ApiError) -> JsonResponse:
    response = JsonResponse(error.payload(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


@method_decorator(csrf_exempt, name="dispatch")
class ApiView(View):
    """Bearer-token views: no cookies, no CSRF; every failure is an OpenAI error object."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # English whatever Accept-Language says (LocaleMiddleware would follow it); a
        # streamed answer keeps English too (gateway.open_stream).
        with translation.override(API_LANGUAGE):
            try:
                if request.method.lower() not in self.http_method_names or not hasattr(
                    self, request.method.lower()
                ):
                    raise ApiError(
                        405,
                        _("%(method)s is not allowed here.") % {"method": request.method},
                        code="method_not_allowed",
                    )
                self.api_user = gateway.authenticate(request.headers.get("Authorization", ""))
                response = super().dispatch(request, *args, **kwargs)
            except ApiError as error:
                response = error_response(error)
        response["Cache-Control"] = "no-store"
        response["Content-Language"] = API_LANGUAGE
        return response


class ModelListView(ApiView):
    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> HttpResponse:
        models = gateway.usable_models(self.api_user)
        return JsonResponse({"object": "list", "data": [gateway.model_object(m) for m in models]})


class ModelDetailView(ApiView):
    http_method_names = ["get"]

    def get(self, request: HttpRequest, model_id: str) -> HttpResponse:
        return JsonResponse(gateway.model_object(gateway.find_model(self.api_user, model_id)))


class ChatCompletionsView(ApiView):
    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            body = request.body
        except RequestDataTooBig:
            raise ApiError(413, _("The request is too large."), code="request_too_large") from None
        completion = gateway.parse_request(self.api_user, body)
        gateway.check_limits(self.api_user)
        if not completion.stream:
            return JsonResponse(gateway.complete(self.api_user, completion))
        response = StreamingHttpResponse(
            gateway.open_stream(self.api_user, completion),
            content_type="text/event-stream; charset=utf-8",
        )
        response["X-Accel-Buffering"] = "no"
        return response


@method_decorator(csrf_exempt, name="dispatch")
class ApiNotFoundView(View):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with translation.override(API_LANGUAGE):
            response = error_response(
                ApiError(
                    404,
                    _("There is no %(path)s in Parley's API.") % {"path": request.path[:200]},
                    code="unknown_url",
                )
            )
        response["Content-Language"] = API_LANGUAGE
        return response
