"""Audit events for granting superuser, groups and permissions (admin permission work, issue 8).

Follows 0002_message_author."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_message_author"),
    ]

    operations = [
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
                ],
                db_index=True,
                max_length=40,
            ),
        ),
    ]
