"""What the files app announces to the apps above it (which it must not import)."""

from django.dispatch import Signal

# Sent once a file's validation has ended (processed or error), after the commit.
# Arguments: tenant (Organization), file_id (the File's primary key), status.
validation_finished = Signal()
