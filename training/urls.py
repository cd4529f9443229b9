from django.urls import path

from . import views

app_name = "training"
urlpatterns = [
    path("training/", views.run_list, name="run_list"),
    path("training/new/<slug:kind>/", views.run_new, name="run_new"),
    path("training/new/<slug:kind>/preview/", views.run_preview, name="run_preview"),
    path("training/runs/<uuid:run_uuid>/", views.run_detail, name="run_detail"),
    path("training/runs/<uuid:run_uuid>/cancel/", views.run_cancel, name="run_cancel"),
    path("training/runs/<uuid:run_uuid>/tensorboard/", views.run_tensorboard, name="run_tensorboard"),
    path("models/", views.model_list, name="model_list"),
    path("models/base/", views.model_register_base, name="model_register_base"),
    path("models/<uuid:version_uuid>/", views.model_detail, name="model_detail"),
    path("models/<uuid:version_uuid>/register/", views.model_register, name="model_register"),
    path("models/<uuid:version_uuid>/sample/", views.model_sample, name="model_sample"),
    path("models/<uuid:version_uuid>/pairs/", views.model_pairs, name="model_pairs"),
]
