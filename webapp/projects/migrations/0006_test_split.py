from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("projects", "0005_move_api_token_to_accounts")]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="test_fraction",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="datasetclass",
            name="test_count",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
