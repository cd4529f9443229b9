from django.urls import path

from . import views

app_name = "lineage"
urlpatterns = [
    path("lineage/models/<uuid:version_uuid>/", views.model_lineage, name="model"),
    path("lineage/compare/", views.compare, name="compare"),
    path("lineage/datasets/<uuid:dataset_uuid>/", views.dataset_downstream, name="dataset"),
    path("lineage/runs/<uuid:run_uuid>/", views.run_downstream, name="run"),
    path("lineage/snapshots/<uuid:export_uuid>/", views.snapshot_downstream, name="snapshot"),
]
