from django.contrib import admin
from django.urls import include, path

from config.views import HealthView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("models/", include("models_registry.urls")),
    path("v1/", include("chat.api_urls")),
    path("", include("chat.urls")),
]
