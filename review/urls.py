from django.urls import path

from . import gold_views, views

app_name = "review"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("claim/", views.claim, name="claim"),
    path("release/", views.release, name="release"),
    path("undo/", views.undo, name="undo"),
    path("critiques/<uuid:critique_uuid>/", views.item, name="item"),
    path("critiques/<uuid:critique_uuid>/decide/", views.decide, name="decide"),
    path("critiques/<uuid:critique_uuid>/take/", views.take, name="take"),
    path("agreement/", views.agreement, name="agreement"),
    path("adjudication/", views.adjudication_list, name="adjudication_list"),
    path("adjudication/<uuid:critique_uuid>/", views.adjudicate, name="adjudicate"),
    path("adjudication/undo/", views.adjudication_undo, name="adjudication_undo"),
    path("corrections/<int:correction_id>/decide/", views.decide_correction, name="decide_correction"),
    path("audit/", views.audit_run, name="audit_run"),
    path("calibration/", gold_views.calibration, name="calibration"),
    path("calibration/gold/", gold_views.mark_gold, name="mark_gold"),
    path("calibration/seed/", gold_views.seed, name="seed_flaws"),
]
