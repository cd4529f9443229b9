from django.urls import path

from . import views

app_name = "inference"
urlpatterns = [
    path("runs/", views.run_list, name="run_list"),
    path("runs/new/", views.run_new, name="run_new"),
    path("runs/<uuid:run_uuid>/", views.run_detail, name="run_detail"),
    path("runs/<uuid:run_uuid>/cancel/", views.run_cancel, name="run_cancel"),
    path("critiques/<uuid:critique_uuid>/", views.critique_detail, name="critique_detail"),
    path("templates/", views.template_list, name="template_list"),
]
