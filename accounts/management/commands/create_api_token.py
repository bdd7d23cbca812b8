"""manage.py create_api_token: a personal API token for a user, printed once for scripts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.api_tokens import create_api_token
from accounts.models import User

MAX_EXPIRES_DAYS = 3650


class Command(BaseCommand):
    help = (
        "Create a personal API token for the account USERNAME (it must exist and be active) "
        "and print the token alone on standard output, one line, for scripts; a note goes to "
        "standard error. The token is not stored (only its SHA-256) and cannot be shown "
        "again. --expires-days N (1 to 3650) makes it expire N days from now; without it, it "
        "never expires. Records one 'api_token_create' audit event."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The account the token acts as.")
        parser.add_argument(
            "--name", required=True, help="What will use the token (1 to 100 characters)."
        )
        parser.add_argument(
            "--expires-days",
            metavar="N",
            help=f"Expire the token N days from now (1 to {MAX_EXPIRES_DAYS}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        expires_at = None
        if options["expires_days"] is not None:
            expires_at = timezone.now() + timedelta(days=self._days(options["expires_days"]))
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No account is named {username!r}.")
        if not user.is_active:
            raise CommandError(f"The account {username!r} is inactive: activate it first.")
        try:
            token, raw_token = create_api_token(
                user=user, name=options["name"], expires_at=expires_at, via="command"
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(raw_token)
        expiry = f"expires {expires_at:%Y-%m-%d %H:%M %Z}" if expires_at else "never expires"
        waiting = "" if user.approved else " It works once the account is approved."
        self.stderr.write(
            f"Created API token {token.name!r} ({token.prefix}…) for {username}; it {expiry} "
            f"and will not be shown again.{waiting}",
            style_func=str,
        )

    def _days(self, value: str) -> int:
        try:
            days = int(value)
        except ValueError:
            days = 0
        if not 1 <= days <= MAX_EXPIRES_DAYS:
            raise CommandError(
                f"--expires-days must be a whole number of days from 1 to {MAX_EXPIRES_DAYS}, "
                f"not {value!r}."
            )
        return days
