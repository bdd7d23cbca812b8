"""manage.py create_api_token: a personal API token for a user, printed once for scripts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.api_tokens import create_api_token
from accounts.models import User
from config.i18n import TranslatedHelpCommand

MAX_EXPIRES_DAYS = 3650


class Command(TranslatedHelpCommand):
    help = gettext_lazy(
        "Create a personal API token for the account USERNAME (it must exist and be active) "
        "and print the token alone on standard output, one line, for scripts; a note goes to "
        "standard error. The token is not stored (only its SHA-256) and cannot be shown "
        "again. --expires-days N (1 to 3650) makes it expire N days from now; without it, it "
        "never expires. Records one 'api_token_create' audit event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help=gettext_lazy("The account the token acts as."))
        parser.add_argument(
            "--name",
            required=True,
            help=gettext_lazy("What will use the token (1 to 100 characters)."),
        )
        parser.add_argument(
            "--expires-days",
            metavar="N",
            help=format_lazy(
                gettext_lazy("Expire the token N days from now (1 to {days})."),
                days=MAX_EXPIRES_DAYS,
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        expires_at = None
        if options["expires_days"] is not None:
            expires_at = timezone.now() + timedelta(days=self._days(options["expires_days"]))
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(_("No account is named %(name)r.") % {"name": username})
        if not user.is_active:
            raise CommandError(
                _("The account %(name)r is inactive: activate it first.") % {"name": username}
            )
        try:
            token, raw_token = create_api_token(
                user=user, name=options["name"], expires_at=expires_at, via="command"
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(raw_token)  # the one machine-readable line: never translated
        names = {"name": repr(token.name), "prefix": token.prefix, "user": username}
        if expires_at:
            note = _(
                "Created API token %(name)s (%(prefix)s…) for %(user)s; it expires %(expires)s "
                "and will not be shown again."
            ) % {**names, "expires": f"{expires_at:%Y-%m-%d %H:%M %Z}"}
        else:
            note = (
                _(
                    "Created API token %(name)s (%(prefix)s…) for %(user)s; it never expires and "
                    "will not be shown again."
                )
                % names
            )
        if not user.approved:
            note += " " + _("It works once the account is approved.")
        self.stderr.write(note, style_func=str)

    def _days(self, value: str) -> int:
        try:
            days = int(value)
        except ValueError:
            days = 0
        if not 1 <= days <= MAX_EXPIRES_DAYS:
            raise CommandError(
                _("--expires-days must be a whole number of days from 1 to %(max)d, not %(value)r.")
                % {"max": MAX_EXPIRES_DAYS, "value": value}
            )
        return days
