from django.urls import path

from . import team_views

app_name = "team"
urlpatterns = [
    path("", team_views.members, name="members"),
    path("new/", team_views.create, name="create"),
    path("progress/", team_views.progress_page, name="progress"),
    path("bulk/", team_views.bulk, name="bulk"),
    path("<int:user_id>/", team_views.member, name="member"),
    path("<int:user_id>/roles/", team_views.set_roles, name="set_roles"),
    path("<int:user_id>/active/", team_views.set_active, name="set_active"),
    path("<int:user_id>/password/", team_views.reset_password, name="reset_password"),
    path("<int:user_id>/assign/", team_views.assign, name="assign"),
    path("assignments/<int:assignment_id>/remove/", team_views.unassign, name="unassign"),
    path("join/<str:uidb64>/<str:token>/", team_views.join, name="join"),
]
