"""Usage records, monthly spending limits per person and the team default, and their audit
events (issue 9).

Follows 0003_audit_and_admin."""

from __future__ import annotations

from decimal import Decimal

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_audit_and_admin"),
    ]

    operations = [
        migrations.CreateModel(
            name="TeamBudget",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "default_monthly_limit",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Monthly spending limit in USD for everyone without a limit of their own. Empty: no limit.",
                        max_digits=12,
                        null=True,
                        validators=[django.core.validators.MinValueValidator(Decimal("0"))],
                    ),
                ),
            ],
            options={
                "verbose_name": "team budget",
            },
        ),
        migrations.AddField(
            model_name="user",
            name="monthly_limit",
            field=models.DecimalField(
                blank=True,
                decimal_places=2,
                help_text="Monthly spending limit in USD. Empty: the team default (Team budget).",
                max_digits=12,
                null=True,
                validators=[django.core.validators.MinValueValidator(Decimal("0"))],
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("token.set", "Token Set"),
                    ("token.replaced", "Token Replaced"),
                    ("token.removed", "Token Removed"),
                    ("token.revoked", "Token Revoked"),
                    ("token.verified", "Token Verified"),
                    ("token.expiry_changed", "Token Expiry Changed"),
                    ("token.rejected", "Token Rejected"),
                    ("tokens.rotated", "Tokens Rotated"),
                    ("user.created", "User Created"),
                    ("user.deactivated", "User Deactivated"),
                    ("user.reactivated", "User Reactivated"),
                    ("user.made_staff", "User Made Staff"),
                    ("user.staff_removed", "User Staff Removed"),
                    ("user.made_superuser", "User Made Superuser"),
                    ("user.superuser_removed", "User Superuser Removed"),
                    ("user.groups_changed", "User Groups Changed"),
                    ("user.permissions_changed", "User Permissions Changed"),
                    ("user.password_reset", "User Password Reset"),
                    ("user.team_token_allowed", "User Team Token Allowed"),
                    ("user.team_token_denied", "User Team Token Denied"),
                    ("user.limit_changed", "User Limit Changed"),
                    ("team.budget_changed", "Team Budget Changed"),
                ],
                db_index=True,
                max_length=40,
            ),
        ),
        migrations.CreateModel(
            name="Usage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("user_name", models.CharField(blank=True, max_length=150)),
                (
                    "kind",
                    models.CharField(
                        choices=[("reply", "Reply"), ("title", "Title")],
                        default="reply",
                        max_length=16,
                    ),
                ),
                ("model", models.CharField(blank=True, max_length=200)),
                ("token_source", models.CharField(blank=True, max_length=8)),
                ("prompt_tokens", models.PositiveBigIntegerField(default=0)),
                ("completion_tokens", models.PositiveBigIntegerField(default=0)),
                ("total_tokens", models.PositiveBigIntegerField(default=0)),
                ("estimated", models.BooleanField(default=False)),
                ("pricing", models.JSONField(blank=True, null=True)),
                (
                    "prompt_price",
                    models.DecimalField(blank=True, decimal_places=16, max_digits=24, null=True),
                ),
                (
                    "completion_price",
                    models.DecimalField(blank=True, decimal_places=16, max_digits=24, null=True),
                ),
                (
                    "cost",
                    models.DecimalField(blank=True, decimal_places=8, max_digits=14, null=True),
                ),
                ("status", models.CharField(blank=True, max_length=16)),
                ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "finished_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "conversation",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="chat.conversation",
                    ),
                ),
                (
                    "message",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="usage",
                        to="chat.message",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="usage_records",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "usage",
                "ordering": ["-finished_at", "-id"],
                "indexes": [
                    models.Index(fields=["user", "finished_at"], name="usage_user_finished")
                ],
            },
        ),
    ]
