from django.urls import path
from notes import views

urlpatterns = [
    path("notes/", views.create_note),
    path("tasks/<str:result_id>/", views.task_status),
    path("tasks/<str:result_id>/page", views.task_page),
]
