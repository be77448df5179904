"""The dashboard's forms. They check shapes; the tenants services decide the rules.

A TenantError a service raises is put back on the form with `add_service_error`,
on the field its `param` names, so every message shows next to what caused it.
"""

from datetime import UTC, date, datetime, time

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from tenants.errors import TenantError
from tenants.models import ApiKeyScope, Invitation, Role, User
from tenants.selectors import email_taken

# The columns' lengths: a longer address would be cut, or refused by the database.
INVITATION_EMAIL_MAX_LENGTH = Invitation._meta.get_field("email").max_length
USER_EMAIL_MAX_LENGTH = User._meta.get_field("email").max_length


def add_service_error(
    form: forms.Form, error: TenantError, *, fields: dict[str, str] | None = None
) -> None:
    """Show a service's error on the field its param names (renamed through `fields`), else on top."""
    field = (fields or {}).get(error.param or "", error.param)
    form.add_error(field if field in form.fields else None, error.message)


def _role_choices(roles: list[str]) -> list[tuple[str, str]]:
    return [(role, Role(role).label) for role in roles]


class SignUpForm(forms.Form):
    name = forms.CharField(
        label="Your name",
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "name", "autofocus": True}),
    )
    email = forms.EmailField(
        label="Work e-mail",
        max_length=USER_EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not a common password and not all digits.",
    )
    organization_name = forms.CharField(
        label="Organization name",
        max_length=120,
        error_messages={"required": "The organization needs a name."},
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
        help_text="Your company or team. You can create more organizations later.",
    )

    def __init__(self, *args, require_organization: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not require_organization:
            field = self.fields["organization_name"]
            field.required = False
            field.label = "Organization name (optional)"
            field.help_text = "Leave empty to only join the organization that invited you."

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if email_taken(email=email):
            raise forms.ValidationError(
                "An account with this e-mail address already exists. Log in instead.",
                code="email_taken",
            )
        return email

    def clean(self) -> dict:
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            candidate = User(email=cleaned.get("email", ""), first_name=cleaned.get("name", ""))
            try:
                password_validation.validate_password(password, user=candidate)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned

    def organization(self) -> str | None:
        """The organization to create, or None when the person only joins one."""
        return self.cleaned_data.get("organization_name") or None


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label="E-mail",
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That e-mail address and password do not match an account.",
    }

    def clean_username(self) -> str:
        # Addresses are stored lowercased; let people type them as they like.
        return self.cleaned_data["username"].strip().lower()


class OrganizationForm(forms.Form):
    name = forms.CharField(
        label="Organization name",
        max_length=120,
        error_messages={"required": "The organization needs a name."},
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "organization"}),
    )


class InviteForm(forms.Form):
    email = forms.EmailField(
        label="E-mail",
        max_length=INVITATION_EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"placeholder": "teammate@company.com"}),
    )
    role = forms.ChoiceField(label="Role", initial=Role.MEMBER)

    def __init__(self, *args, roles: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(roles)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "e.g. production backend"}),
        help_text="Something that tells you later where this key is used.",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=ApiKeyScope.choices,
        initial=[ApiKeyScope.MODELS, ApiKeyScope.FILES, ApiKeyScope.FINE_TUNING],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one scope."},
    )
    read_only = forms.BooleanField(
        label="Read-only",
        required=False,
        help_text="The key can list and read, but not create, change or delete.",
    )
    expires_at = forms.DateField(
        label="Expires on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="Optional. The key stops working at 00:00 UTC that day.",
    )
    requests_per_minute = forms.IntegerField(
        label="Requests per minute", required=False, min_value=1, help_text="Optional limit."
    )
    tokens_per_minute = forms.IntegerField(
        label="Tokens per minute", required=False, min_value=1, help_text="Optional limit."
    )

    def expiry(self) -> datetime | None:
        day: date | None = self.cleaned_data.get("expires_at")
        return datetime.combine(day, time.min, tzinfo=UTC) if day else None


class DatasetUploadForm(forms.Form):
    file = forms.FileField(
        label="File",
        allow_empty_file=True,  # the service names the empty file in its message
        error_messages={"required": "Choose a file to upload."},
        help_text="JSONL (chat or prompt/completion) or CSV with text and label columns.",
    )
    purpose = forms.ChoiceField(
        label="Purpose",
        choices=[
            ("fine-tune", "Fine-tuning dataset (validated)"),
            ("batch", "Batch requests (JSONL for the Batch API)"),
            ("user_data", "Other data (stored as is)"),
        ],
        initial="fine-tune",
    )

    def clean(self) -> dict:
        cleaned = super().clean()
        # A form posts each field once; a repeated one would silently keep only its last value.
        for name, values in (("file", self.files), ("purpose", self.data)):
            count = len(values.getlist(name)) if hasattr(values, "getlist") else 0
            if count > 1:
                self.add_error(name, f"The request has {count} '{name}' fields; send exactly one.")
        return cleaned


class FineTuningJobForm(forms.Form):
    """The new-job form. It checks shapes; `parse_job_request` and the services check values.

    Blank hyperparameters mean "auto". `job_request_data` gives the body the API would
    receive, so the dashboard and the API refuse exactly the same things.
    """

    #: a service error's `param` -> the field it is shown on
    PARAM_FIELDS = {
        "hyperparameters.n_epochs": "epochs",
        "hyperparameters.batch_size": "batch_size",
        "hyperparameters.learning_rate_multiplier": "learning_rate_multiplier",
        "hyperparameters": "epochs",
    }
    HYPERPARAMETER_FIELDS = {
        "epochs": "n_epochs",
        "batch_size": "batch_size",
        "learning_rate_multiplier": "learning_rate_multiplier",
    }

    model = forms.ChoiceField(
        label="Base model", error_messages={"required": "Choose the model to fine-tune."}
    )
    training_file = forms.ChoiceField(
        label="Training file", error_messages={"required": "Choose a training file."}
    )
    validation_file = forms.ChoiceField(
        label="Validation file",
        required=False,
        help_text="Optional. Its loss is measured after each epoch and drawn beside the training loss.",
    )
    suffix = forms.CharField(
        label="Suffix",
        required=False,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "e.g. support-bot", "autocomplete": "off"}),
        help_text="Optional; part of the new model's name. Letters, digits, '.', '_' and '-'.",
    )
    training_type = forms.ChoiceField(
        label="Training type",
        choices=[
            ("lora", "LoRA adapter"),
            ("full", "Full fine-tune"),
        ],
        initial="lora",
        widget=forms.RadioSelect,
    )
    epochs = forms.IntegerField(
        label="Epochs",
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": "auto", "min": 1, "max": 50}),
    )
    batch_size = forms.IntegerField(
        label="Batch size",
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": "auto", "min": 1, "max": 256}),
    )
    learning_rate_multiplier = forms.FloatField(
        label="Learning rate multiplier",
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": "auto", "step": "any", "min": 0}),
    )
    seed = forms.IntegerField(
        label="Seed",
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": "random", "min": 0}),
        help_text="Optional. The same seed, data and settings train the same model.",
    )

    def __init__(
        self,
        *args,
        models: list[tuple[str, str]],
        files: list[tuple[str, str]],
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = models
        self.fields["training_file"].choices = [("", "Choose a file…"), *files]
        self.fields["validation_file"].choices = [("", "None"), *files]

    def job_request_data(self) -> dict:
        data = self.cleaned_data
        body = {
            "model": data["model"],
            "training_file": data["training_file"],
            "validation_file": data.get("validation_file") or None,
            "suffix": data.get("suffix") or None,
            "training_type": data["training_type"],
            "seed": data.get("seed"),
        }
        hyperparameters = {
            name: data[field]
            for field, name in self.HYPERPARAMETER_FIELDS.items()
            if data.get(field) is not None
        }
        if hyperparameters:
            body["hyperparameters"] = hyperparameters
        return body


class BatchForm(forms.Form):
    """A new batch: a `purpose=batch` file of the organization and the endpoint its lines call."""

    input_file = forms.ChoiceField(label="Requests file")
    endpoint = forms.ChoiceField(label="Endpoint")

    def __init__(self, *args, files, endpoints, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["input_file"].choices = [
            (file.public_id, f"{file.filename} ({file.public_id})") for file in files
        ]
        self.fields["endpoint"].choices = [(endpoint, endpoint) for endpoint in endpoints]
