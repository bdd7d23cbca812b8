from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.NewChatView.as_view(), name="home"),
    path("chats/", views.ChatListView.as_view(), name="list"),
    path("chats/new/", views.NewChatView.as_view(), name="new"),
    path("chats/<int:pk>/", views.ChatDetailView.as_view(), name="detail"),
    path("chats/<int:pk>/send/", views.SendView.as_view(), name="send"),
    path("chats/<int:pk>/stop/", views.StopView.as_view(), name="stop"),
    path("chats/<int:pk>/regenerate/", views.RegenerateView.as_view(), name="regenerate"),
    path("chats/<int:pk>/edit/", views.EditView.as_view(), name="edit"),
    path("chats/<int:pk>/rename/", views.RenameView.as_view(), name="rename"),
    path("chats/<int:pk>/delete/", views.DeleteView.as_view(), name="delete"),
    path("chats/<int:pk>/export.<str:fmt>", views.ExportView.as_view(), name="export"),
]
