from django.urls import path
from django.views.generic import RedirectView

app_name = "dashboard"

urlpatterns = [
    path("", RedirectView.as_view(url="/console/"), name="home"),
    path("login/", RedirectView.as_view(url="/console/login/"), name="login"),
    path("organizations/new/", RedirectView.as_view(url="/"), name="organization-create"),
]
