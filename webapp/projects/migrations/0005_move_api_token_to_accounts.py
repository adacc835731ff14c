# ApiToken now belongs to the accounts app (accounts/0001_initial takes over its table as it is):
# only the projects state forgets the model; the table and its rows stay.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("projects", "0004_dataset_ingest_tracking"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ApiToken")],
            database_operations=[],
        ),
    ]
