from django.urls import path

from inference import api

from . import views as eval_views

app_name = "evaluation"
urlpatterns = [
    path("evaluation/", eval_views.results, name="results"),
    path("evaluation/new/", eval_views.evaluation_new, name="evaluation_new"),
    path("evaluation/runs/<uuid:run_uuid>/", eval_views.run_detail, name="run_detail"),
    path(
        "evaluation/runs/<uuid:run_uuid>/solutions/<uuid:solution_uuid>/",
        eval_views.run_solution,
        name="run_solution",
    ),
    path("evaluation/runs/<uuid:run_uuid>/cancel/", eval_views.run_cancel, name="run_cancel"),
    path("guidance/", eval_views.guidance_list, name="guidance_list"),
    path("guidance/new/", eval_views.guidance_new, name="guidance_new"),
    path("guidance/runs/<uuid:run_uuid>/", eval_views.guidance_detail, name="guidance_detail"),
    path("guidance/runs/<uuid:run_uuid>/cancel/", eval_views.guidance_cancel, name="guidance_cancel"),
    path("api/v1/score", api.score, name="api_score"),
]
