from django.urls import path

from notes import views

urlpatterns = [
    path("notebooks/", views.notebooks),
    path("notes/", views.notes),
    path("notes/<int:pk>/", views.note_detail),
    path("notebooks/<int:pk>/move-to/<int:target>/", views.move_notes),
]
