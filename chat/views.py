"""Chat pages. Thin: selectors read (scoped to the user), services and streaming act."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from chat import search, selectors, services
from chat.context import build_context
from chat.markdown import message_html
from chat.models import ChatSession, MessageStatus
from chat.services import ChatRejected, Turn
from chat.streaming import (
    AnswerStream,
    replay_events,
    run_to_completion,
    start_answer,
    sweep_stale_streams,
)
from config.services import get_system_setting


def wants_stream(request: HttpRequest) -> bool:
    return "text/event-stream" in request.headers.get("Accept", "")


class UserChatMixin(LoginRequiredMixin):
    """Every chat view reaches chats only through the user's own queryset: others are 404."""

    def get_session(self) -> ChatSession:
        session = selectors.user_chat(self.request.user, self.kwargs["pk"])
        if session is None:
            raise Http404
        return session


class SidebarMixin:
    def sidebar_context(self) -> dict[str, Any]:
        request = self.request
        query = search.clean_query(request.GET.get("q", ""))
        page = selectors.sidebar_page(
            request.user, cursor=request.GET.get("cursor", ""), query=query
        )
        return {"sidebar": page, "search_query": query}


class NewChatView(LoginRequiredMixin, SidebarMixin, TemplateView):
    """`/`: the model picker and the composer; the first message creates the chat."""

    template_name = "chat/new.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        available = selectors.models_for_user(self.request.user)
        usable = {m.pk for m in available}
        # The user's own default (Preferences) when it is still usable, else the admin's.
        default = self.request.user.default_model_id
        if default not in usable:
            default = get_system_setting().default_model_id
        context.update(self.sidebar_context())
        context["available_models"] = available
        context["selected_model_id"] = int(self.request.POST.get("model") or 0) or (
            default if any(m.pk == default for m in available) else None
        )
        return context

    def post(self, request: HttpRequest) -> HttpResponse:
        models_by_id = {m.pk: m for m in selectors.models_for_user(request.user)}
        try:
            model_id = int(request.POST.get("model", ""))
        except ValueError:
            model_id = 0
        text = request.POST.get("content", "")
        try:
            services.check_rate_limit(request.user)
            model_config = models_by_id.get(model_id)
            if model_config is None:
                raise ChatRejected(_("Choose a model for this chat."))
            services.validate_message(text, model_config, own_prompt=request.user.system_prompt)
            session = chat_of_retried_post(
                request.user, request.POST.get("client_id")
            ) or services.chat_create(user=request.user, model_config=model_config)
            return send_message(request, session, text)
        except ChatRejected as rejection:
            return self.rejected(request, rejection)

    def rejected(self, request: HttpRequest, rejection: ChatRejected) -> HttpResponse:
        if wants_stream(request):
            return JsonResponse({"error": rejection.message}, status=rejection.status)
        context = self.get_context_data(error=rejection.message, draft=request.POST.get("content"))
        return self.render_to_response(context, status=rejection.status)


def chat_of_retried_post(user: Any, client_id: str | None) -> ChatSession | None:
    """The chat a retried "new chat" POST (same client_id) already created, if any."""
    try:
        parsed = uuid.UUID(str(client_id))
    except ValueError:
        return None
    return selectors.sessions_for(user).filter(messages__client_id=parsed).first()


def send_message(request: HttpRequest, session: ChatSession, text: str) -> HttpResponse:
    """Check, save and answer a new message; raises ChatRejected with the reason.

    Streamed answers go through ``start_answer``, which asks the upstream before saving.
    """
    outcome = services.prepare_turn(
        session=session, text=text, client_id=request.POST.get("client_id")
    )
    if isinstance(outcome, Turn):  # a retried POST: answer with what it started
        return answer_response(request, outcome)
    if not wants_stream(request):
        return answer_response(request, services.commit_turn(outcome))
    turn, stream = start_answer(outcome)
    return event_stream(stream.events()) if stream else answer_response(request, turn)


def answer_response(request: HttpRequest, turn: Turn) -> HttpResponse:
    """Stream the answer (JavaScript), or write it fully and redirect (plain form)."""
    chat_url = reverse("chat:detail", args=[turn.session.pk])
    if not turn.created:
        if turn.placeholder.status == MessageStatus.STREAMING:
            if wants_stream(request):
                return JsonResponse(
                    {"error": _("This message is already being answered."), "chat_url": chat_url},
                    status=409,
                )
            return HttpResponseRedirect(chat_url)
        if wants_stream(request):
            return event_stream(replay_events(turn.placeholder))
        return HttpResponseRedirect(chat_url)
    if wants_stream(request):
        return event_stream(AnswerStream(turn).events())
    run_to_completion(turn)
    return HttpResponseRedirect(f"{chat_url}#message-{turn.placeholder.pk}")


def event_stream(events: Any) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


def message_cursor(value: str | None) -> int | None:
    """A message id from a URL (`?before=`); None when absent or not ASCII digits."""
    return int(value) if value and value.isascii() and value.isdigit() else None


class ChatDetailView(UserChatMixin, SidebarMixin, TemplateView):
    template_name = "chat/detail.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        session = self.get_session()
        sweep_stale_streams(session=session)
        before = message_cursor(self.request.GET.get("before"))
        page = selectors.message_page(session, before=before)
        for message in page.messages:
            message.html = (
                message_html(message.content, message.rendered_html)
                if message.role == "assistant"
                else ""
            )
        newest_page = before is None
        last = page.messages[-1] if page.messages and newest_page else None
        context.update(self.sidebar_context())
        context.update(
            session=session,
            page=page,
            last_message=last,
            last_user_id=next(
                (m.pk for m in reversed(page.messages) if m.role == "user" and newest_page),
                None,
            ),
            streaming=any(m.status == MessageStatus.STREAMING for m in page.messages),
            window=build_context(session, session.model_config, with_content=False)
            if session.model_config
            else None,
        )
        return context


class ChatActionView(UserChatMixin, View):
    http_method_names = ["post"]

    def rejected(self, rejection: ChatRejected, draft: str = "") -> HttpResponse:
        """The reason, with a 4xx: JSON for the script, else the chat page with the draft."""
        if wants_stream(self.request):
            return JsonResponse({"error": rejection.message}, status=rejection.status)
        view = ChatDetailView(request=self.request, kwargs=self.kwargs)
        context = view.get_context_data(error=rejection.message, draft=draft)
        return render(self.request, view.template_name, context, status=rejection.status)


class SendView(ChatActionView):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        session = self.get_session()
        text = request.POST.get("content", "")
        try:
            services.check_rate_limit(request.user)
            return send_message(request, session, text)
        except ChatRejected as rejection:
            return self.rejected(rejection, draft=text)


class RegenerateView(ChatActionView):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        session = self.get_session()
        try:
            services.check_rate_limit(request.user)
            turn = services.begin_regenerate(
                session=session, client_id=request.POST.get("client_id")
            )
        except ChatRejected as rejection:
            return self.rejected(rejection)
        return answer_response(request, turn)


class EditView(ChatActionView):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        session = self.get_session()
        try:
            services.check_rate_limit(request.user)
            turn = services.begin_edit(
                session=session,
                text=request.POST.get("content", ""),
                client_id=request.POST.get("client_id"),
            )
        except ChatRejected as rejection:
            return self.rejected(rejection, draft=request.POST.get("content", ""))
        return answer_response(request, turn)


class StopView(ChatActionView):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        stopped = services.request_stop(session=self.get_session())
        if request.headers.get("Accept", "").startswith("application/json"):
            return JsonResponse({"stopping": stopped})
        return redirect("chat:detail", pk)


class RenameView(ChatActionView):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        session = self.get_session()
        try:
            services.chat_rename(session=session, title=request.POST.get("title", ""))
        except ChatRejected as rejection:
            return self.rejected(rejection)
        return redirect("chat:detail", pk)


class DeleteView(UserChatMixin, TemplateView):
    template_name = "chat/confirm_delete.html"
    http_method_names = ["get", "post"]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "session": self.get_session()}

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        services.chat_delete(session=self.get_session(), actor=request.user, request=request)
        messages.success(request, _("Chat deleted."))
        return redirect("chat:home")


class ExportView(UserChatMixin, View):
    http_method_names = ["get"]

    def get(self, request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
        session = self.get_session()
        rows = list(session.messages.order_by("id"))
        name = slugify(session.title)[:50] or f"chat-{session.pk}"
        if fmt == "json":
            body = json.dumps(
                {
                    "title": session.title,
                    "model": session.model_config.name if session.model_config else None,
                    "created_at": session.created_at.isoformat(),
                    "messages": [
                        {
                            "role": m.role,
                            "content": m.content,
                            "status": m.status,
                            "created_at": m.created_at.isoformat(),
                            **({"error": m.error} if m.error else {}),
                        }
                        for m in rows
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
            content_type = "application/json; charset=utf-8"
        elif fmt == "md":
            parts = [f"# {session.title or _('Untitled chat')}\n"]
            for m in rows:
                heading = {"user": _("You"), "assistant": _("Assistant")}.get(m.role, m.role)
                parts.append(f"## {heading}\n\n{m.content}\n")
                if m.status != MessageStatus.COMPLETE:
                    parts.append(
                        f"_({m.get_status_display()}{': ' + m.error if m.error else ''})_\n"
                    )
            body = "\n".join(parts)
            content_type = "text/markdown; charset=utf-8"
        else:
            raise Http404
        services.chat_exported(session=session, actor=request.user, fmt=fmt, request=request)
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
        return response


class ChatListView(LoginRequiredMixin, SidebarMixin, TemplateView):
    """`/chats/`: the full list with "Load more"; with `q`, search results for titles and
    message text (`before`: older message matches)."""

    template_name = "chat/list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = {**super().get_context_data(**kwargs), **self.sidebar_context()}
        if context["search_query"]:
            context["search"] = selectors.search_page(
                self.request.user,
                context["search_query"],
                before=message_cursor(self.request.GET.get("before")),
            )
            context.update(max_candidates=search.MAX_CANDIDATES, result_limit=search.RESULT_LIMIT)
        return context
