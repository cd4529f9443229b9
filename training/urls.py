from django.urls import path

from . import export_views, views

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
    # Training-data exports: served under /review/ (where reviewers find them; bookmarks keep working).
    path("review/exports/", export_views.export_list, name="export_list"),
    path("review/exports/<uuid:export_uuid>/", export_views.export_detail, name="export_detail"),
    path(
        "review/exports/<uuid:export_uuid>/files/<str:name>",
        export_views.export_download,
        name="export_download",
    ),
]
