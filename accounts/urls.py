from django.urls import path

from accounts import views
from accounts.language import SetLanguageView

app_name = "accounts"

urlpatterns = [
    path("", views.AccountView.as_view(), name="account"),
    path("theme/", views.ThemeView.as_view(), name="theme"),
    path("language/", SetLanguageView.as_view(), name="set_language"),
    path("preferences/", views.PreferencesView.as_view(), name="preferences"),
    path("signup/", views.SignupView.as_view(), name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("pending/", views.PendingApprovalView.as_view(), name="pending"),
    path("tokens/", views.ApiTokenListView.as_view(), name="api_tokens"),
    path("tokens/<int:pk>/revoke/", views.ApiTokenRevokeView.as_view(), name="api_token_revoke"),
]
