from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="annotations:dataset_list"), name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("annotations.urls")),
    path("", include("inference.urls")),
    path("review/", include("review.urls")),
    path("dashboards/", include("dashboards.urls")),
    path("", include("evaluation.urls")),
    path("", include("training.urls")),
]
