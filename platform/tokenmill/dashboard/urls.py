from django.urls import path

from tokenmill.dashboard.views import (
    api_keys,
    auth,
    batches,
    billing,
    datasets,
    home,
    invitations,
    jobs,
    members,
    models,
    organizations,
    playground,
    usage,
)

app_name = "dashboard"

urlpatterns = [
    path("", home.HomeView.as_view(), name="home"),
    path("signup/", auth.SignUpView.as_view(), name="signup"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path(
        "organizations/new/",
        organizations.OrganizationCreateView.as_view(),
        name="organization-create",
    ),
    path(
        "organizations/switch/",
        organizations.OrganizationSwitchView.as_view(),
        name="organization-switch",
    ),
    path("members/", members.MembersView.as_view(), name="members"),
    path("members/invite/", members.MemberInviteView.as_view(), name="member-invite"),
    path("members/<str:public_id>/role/", members.MemberRoleView.as_view(), name="member-role"),
    path(
        "members/<str:public_id>/remove/",
        members.MemberRemoveView.as_view(),
        name="member-remove",
    ),
    path(
        "members/invitations/<str:public_id>/revoke/",
        members.InvitationRevokeView.as_view(),
        name="invitation-revoke",
    ),
    path(
        "invitations/<str:token>/",
        invitations.InvitationAcceptView.as_view(),
        name="invitation-accept",
    ),
    path("api-keys/", api_keys.ApiKeysView.as_view(), name="api-keys"),
    path(
        "api-keys/<str:public_id>/revoke/",
        api_keys.ApiKeyRevokeView.as_view(),
        name="api-key-revoke",
    ),
    path("datasets/", datasets.DatasetsView.as_view(), name="datasets"),
    path(
        "datasets/<str:public_id>/",
        datasets.DatasetDetailView.as_view(),
        name="dataset-detail",
    ),
    path(
        "datasets/<str:public_id>/status/",
        datasets.DatasetStatusView.as_view(),
        name="dataset-status",
    ),
    path(
        "datasets/<str:public_id>/delete/",
        datasets.DatasetDeleteView.as_view(),
        name="dataset-delete",
    ),
    path(
        "datasets/<str:public_id>/download/",
        datasets.DatasetDownloadView.as_view(),
        name="dataset-download",
    ),
    path("batches/", batches.BatchesView.as_view(), name="batches"),
    path("batches/<str:public_id>/", batches.BatchDetailView.as_view(), name="batch-detail"),
    path("batches/<str:public_id>/status/", batches.BatchStatusView.as_view(), name="batch-status"),
    path("batches/<str:public_id>/cancel/", batches.BatchCancelView.as_view(), name="batch-cancel"),
    path("models/", models.ModelsView.as_view(), name="models"),
    path("models/<str:model_id>/delete/", models.ModelDeleteView.as_view(), name="model-delete"),
    path("fine-tuning/", jobs.JobsView.as_view(), name="jobs"),
    path("fine-tuning/new/", jobs.JobCreateView.as_view(), name="job-create"),
    path("fine-tuning/estimate/", jobs.JobEstimateView.as_view(), name="job-estimate"),
    path("fine-tuning/<str:public_id>/", jobs.JobDetailView.as_view(), name="job-detail"),
    path("fine-tuning/<str:public_id>/status/", jobs.JobStatusView.as_view(), name="job-status"),
    path("fine-tuning/<str:public_id>/cancel/", jobs.JobCancelView.as_view(), name="job-cancel"),
    path("playground/", playground.PlaygroundView.as_view(), name="playground"),
    path("billing/", billing.BillingView.as_view(), name="billing"),
    path("billing/checkout/", billing.BillingCheckoutView.as_view(), name="billing-checkout"),
    path("playground/chat", playground.playground_chat, name="playground-chat"),
    path("usage/", usage.UsageView.as_view(), name="usage"),
    path(
        "fine-tuning/checkpoints/<str:public_id>/model/",
        models.CheckpointModelView.as_view(),
        name="checkpoint-model",
    ),
]
