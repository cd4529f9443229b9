from django.urls import path

from . import views

app_name = "dashboards"
urlpatterns = [
    path("", views.error_types, name="error_types"),
    path("compare/", views.compare, name="compare"),
    path("reviews/", views.review_ops, name="reviews"),
    path("critiques/", views.critiques, name="critiques"),
    path("refresh/", views.refresh, name="refresh"),
    path("refresh/status/", views.refresh_status, name="refresh_status"),
]
