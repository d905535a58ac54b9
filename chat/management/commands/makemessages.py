"""Django's makemessages, also finding the page modules' `t("...")` calls (static/chat/i18n.js)
for the djangojs catalogue:

    python manage.py makemessages -l de -d djangojs -e js --ignore=node_modules ...
(README, "Languages", has the whole command.)"""

from __future__ import annotations

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=t"]
