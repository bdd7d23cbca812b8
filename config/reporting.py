"""Exception reports that never show an API key, token or password."""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

CREDENTIAL_NAMES = re.compile(
    r"API|KEY|TOKEN|SECRET|PASS|SIGNATURE|AUTH|HEADER|PLAINTEXT|CREDENTIAL|COOKIE", re.I
)


class CredentialHidingFilter(SafeExceptionReporterFilter):
    hidden_settings = CREDENTIAL_NAMES

    def get_post_parameters(self, request: Any) -> Any:
        """POST data with every credential-like field hidden, decorated view or not."""
        parameters = super().get_post_parameters(request)
        if not parameters:
            return parameters
        cleansed = parameters.copy()
        for name in cleansed:
            if CREDENTIAL_NAMES.search(name):
                cleansed[name] = self.cleansed_substitute
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> list[tuple[str, Any]]:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [
            (name, self.cleansed_substitute if CREDENTIAL_NAMES.search(name) else value)
            for name, value in variables
        ]
