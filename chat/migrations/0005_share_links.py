"""Shared conversation links and the team's sharing policy (issue 10).

Depends on 0003_audit_and_admin; 0004_usage is written in parallel, and the dependency is
re-pointed when both are merged."""

from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import chat.models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_audit_and_admin"),
    ]

    operations = [
        migrations.CreateModel(
            name="ShareSettings",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "audience",
                    models.CharField(
                        choices=[
                            ("members", "Signed-in members only"),
                            ("anyone", "Anyone with the link"),
                        ],
                        default="members",
                        help_text="Who may open shared conversation links. Takes effect at once, also for links already handed out.",
                        max_length=16,
                    ),
                ),
            ],
            options={
                "verbose_name": "sharing settings",
                "verbose_name_plural": "sharing settings",
            },
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
                    ("share.created", "Share Created"),
                    ("share.revoked", "Share Revoked"),
                ],
                db_index=True,
                max_length=40,
            ),
        ),
        migrations.CreateModel(
            name="ShareLink",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "public_id",
                    models.CharField(
                        default=chat.models.new_public_id,
                        editable=False,
                        max_length=32,
                        unique=True,
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("snapshot", "Snapshot"), ("live", "Live")], max_length=16
                    ),
                ),
                ("token_hash", models.CharField(editable=False, max_length=64, unique=True)),
                (
                    "snapshot_seq",
                    models.PositiveIntegerField(blank=True, editable=False, null=True),
                ),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("view_count", models.PositiveIntegerField(default=0, editable=False)),
                ("last_viewed_at", models.DateTimeField(blank=True, editable=False, null=True)),
                ("show_owner_name", models.BooleanField(default=False)),
                ("show_cost", models.BooleanField(default=False)),
                (
                    "conversation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="share_links",
                        to="chat.conversation",
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="share_links",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
    ]
