"""Users, API tokens and the audit log in the admin. Every change goes through the services
(accounts.services, accounts.api_tokens)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts import api_tokens, services
from accounts.models import ApiToken, AuditEvent, TokenStatus, User


class ParleyUserChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        original = User.objects.get(pk=self.instance.pk)
        services.check_admin_change(
            user=original,
            role=cleaned.get("role", original.role),
            is_active=cleaned.get("is_active", original.is_active),
        )
        return cleaned


class ParleyUserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email", "role")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = ParleyUserChangeForm
    add_form = ParleyUserCreationForm
    list_display = (
        "username",
        "email",
        "role",
        "is_active",
        "approved",
        "date_joined",
        "last_login",
    )
    list_filter = ("role", "is_active", "approved")
    search_fields = ("username", "email", "first_name", "last_name")
    ordering = ("username",)
    actions = ["approve_users", "deactivate_users"]
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email")}),
        (_("Access"), {"fields": ("role", "is_active", "approved")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "username",
                    "email",
                    "role",
                    "usable_password",
                    "password1",
                    "password2",
                ),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined")

    def save_model(self, request: HttpRequest, obj: User, form: forms.Form, change: bool) -> None:
        if not change:
            obj.approved = True
            super().save_model(request, obj, form, change)
            services.user_created_by_admin(user=obj, actor=request.user, request=request)
            return
        original = User.objects.get(pk=obj.pk)
        wanted = {"role": obj.role, "is_active": obj.is_active, "approved": obj.approved}
        obj.role, obj.is_active, obj.approved = original.role, original.is_active, original.approved
        plain_fields = [name for name in form.changed_data if name not in {*wanted, "password"}]
        if plain_fields:
            obj.save(update_fields=plain_fields)
        # Approval first: promoting to ADMIN approves the account, and an unticked box
        # applied after it would leave an unapproved ADMIN (and a false audit row).
        services.user_set_approved(
            user=obj, approved=wanted["approved"], actor=request.user, request=request
        )
        services.user_set_role(user=obj, role=wanted["role"], actor=request.user, request=request)
        services.user_set_active(
            user=obj, is_active=wanted["is_active"], actor=request.user, request=request
        )

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        # Django's view saves the password itself (and redirects on some failures too), so
        # the audit row is written when the stored hash really changed.
        user_pk = unquote(id)
        before = services.stored_password_hash(user_pk)
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and services.stored_password_hash(user_pk) != before:
            user = User.objects.get(pk=user_pk)
            services.password_changed(user=user, actor=request.user, request=request)
        return response

    @admin.action(description=_("Approve selected users"))
    def approve_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = services.users_approve(users=queryset, actor=request.user, request=request)
        self.message_user(
            request,
            ngettext("%(count)d user approved.", "%(count)d users approved.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Deactivate selected users"))
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        try:
            count = services.users_deactivate(users=queryset, actor=request.user, request=request)
        except forms.ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return
        self.message_user(
            request,
            ngettext("%(count)d user deactivated.", "%(count)d users deactivated.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Bulk delete could remove every admin at once; accounts are deleted one by one.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Deleting the last admin would lock everyone out of the admin.
        if obj is not None and obj.is_admin and not services.has_other_active_admin(obj):
            return False
        return super().has_delete_permission(request, obj)


class TokenStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(TokenStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
        now = timezone.now()
        expired = Q(expires_at__isnull=False, expires_at__lte=now)
        if self.value() == TokenStatus.REVOKED:
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == TokenStatus.EXPIRED:
            return queryset.filter(expired, revoked_at__isnull=True)
        if self.value() == TokenStatus.ACTIVE:
            return queryset.filter(revoked_at__isnull=True).exclude(expired)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Read-only: tokens are created by their owner; the admin can only revoke them.

    The hash is never shown (`fields` leaves it out), though it could not be used anyway.
    """

    list_display = (
        "user",
        "name",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (TokenStatusFilter, "created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "name", "prefix")
    date_hierarchy = "created_at"
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.action(description=_("Revoke selected tokens"), permissions=["revoke"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = 0
        for token in queryset.filter(revoked_at__isnull=True).select_related("user"):
            api_tokens.revoke_api_token(token=token, actor=request.user, request=request)
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d token revoked.", "%(count)d tokens revoked.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Revoke, not delete: a revoked token keeps its row for the owner's list.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        # Deleting one token (its delete page) revokes it first, so the trail records it.
        # Delete permission itself stays: deleting a user deletes their tokens with them.
        api_tokens.revoke_api_token(token=obj, actor=request.user, request=request)
        super().delete_model(request, obj)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "actor_username", "target", "ip")
    list_filter = ("action", "created_at")
    search_fields = ("actor_username", "target", "ip")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "actor", "actor_username", "action", "target", "ip", "detail")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
