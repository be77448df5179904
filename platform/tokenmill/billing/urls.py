from django.urls import path

from tokenmill.billing import views

app_name = "billing"

urlpatterns = [
    path("billing/stripe/webhook/", views.stripe_webhook, name="stripe-webhook"),
    path("pricing/", views.pricing, name="pricing"),
]
