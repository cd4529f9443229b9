from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from rprm_web import run_views

handler403 = "rprm_web.errors.forbidden"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="annotations:dataset_list"), name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    # Retry and archive, for every run type (`kind`: rprm_web.runs.kind_of).
    path("run-actions/<slug:kind>/<uuid:run_uuid>/retry/", run_views.run_retry, name="run_retry"),
    path("run-actions/<slug:kind>/<uuid:run_uuid>/archive/", run_views.run_archive, name="run_archive"),
    path("", include("annotations.urls")),
    path("", include("inference.urls")),
    path("review/", include("review.urls")),
    path("dashboards/", include("dashboards.urls")),
    path("team/", include("review.team_urls")),
    path("", include("evaluation.urls")),
    path("", include("training.urls")),
    path("", include("lineage.urls")),
]
