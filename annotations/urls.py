from django.urls import path

from . import views

app_name = "annotations"
urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/import/", views.import_new, name="import_new"),
    path("imports/<uuid:job_uuid>/", views.import_detail, name="import_detail"),
    path("datasets/<uuid:dataset_uuid>/", views.dataset_detail, name="dataset_detail"),
    path("solutions/<uuid:solution_uuid>/", views.solution_detail, name="solution_detail"),
]
