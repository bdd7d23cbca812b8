from django.urls import path

from models_registry import views

app_name = "models_registry"

urlpatterns = [
    path("", views.ModelListView.as_view(), name="list"),
    path("add/", views.ModelCreateView.as_view(), name="add"),
    path("demo/", views.AddDemoModelView.as_view(), name="add_demo"),
    path("<int:pk>/edit/", views.ModelUpdateView.as_view(), name="edit"),
    path("<int:pk>/delete/", views.ModelDeleteView.as_view(), name="delete"),
    path("<int:pk>/test/", views.ModelTestConnectionView.as_view(), name="test"),
]
