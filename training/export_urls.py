"""URLs of the export screens, mounted in the `review` namespace by rprm_web/urls.py."""

from django.urls import path

from . import export_views as views

urlpatterns = [
    path("exports/", views.export_list, name="export_list"),
    path("exports/<uuid:export_uuid>/", views.export_detail, name="export_detail"),
    path("exports/<uuid:export_uuid>/files/<str:name>", views.export_download, name="export_download"),
]
