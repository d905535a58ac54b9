"""A conversation is a tree of messages: each message follows its parent (`parent_seq`), and
messages with the same parent are versions of each other (an edited user message, a regenerated
reply). The person sees one branch: the path from the first message to the conversation's
`visible_leaf`. That branch is what the page shows and what Nobox is sent.

`Tree` is the pure part, over (seq, parent_seq, public_id) triples; the functions below it load
trees and turn messages into their wire form with their versions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db.models import Q

from chat.models import Conversation, Message, WireMessage

Node = tuple[int, int | None, str]  # seq, parent_seq, public_id


class Tree:
    """The tree of one conversation. A node's parent_seq is the seq it follows, 0 for a first
    message, or None for the message before it (rows older than branches, rows made by hand)."""

    def __init__(self, nodes: Iterable[Node], leaf: int | None) -> None:
        self.parent: dict[int, int | None] = {}
        self.public_id: dict[int, str] = {}
        self.children: dict[int | None, list[int]] = defaultdict(list)
        previous: int | None = None
        for seq, parent_seq, public_id in sorted(nodes):
            parent = previous if parent_seq is None else parent_seq or None
            self.parent[seq], self.public_id[seq] = parent, public_id
            self.children[parent].append(seq)
            previous = seq
        self.leaf = leaf if leaf in self.parent else max(self.parent, default=None)

    def path(self, leaf: int | None = None) -> list[int]:
        """The seqs from the first message to `leaf` (default: the visible leaf)."""
        seq = self.leaf if leaf is None else leaf
        path: list[int] = []
        while seq is not None and seq in self.parent:
            path.append(seq)
            seq = self.parent[seq]
        path.reverse()
        return path

    def seq_of(self, public_id: str) -> int | None:
        """The seq of the message `public_id`, None if it is not one of this conversation's."""
        return next((seq for seq, known in self.public_id.items() if known == public_id), None)

    def versions(self, seq: int) -> list[str]:
        """The ids of the versions of message `seq` (it included), oldest first; [] if it has
        none but itself."""
        siblings = self.children.get(self.parent.get(seq), [])
        return [self.public_id[s] for s in siblings] if len(siblings) > 1 else []

    def newest_leaf_under(self, seq: int) -> int:
        """Where a branch through `seq` ends when the person switches to it: down the newest
        version at every step (what they last made or saw there)."""
        while self.children.get(seq):
            seq = self.children[seq][-1]
        return seq

    def base_for(self, seq: int) -> int:
        """The last message of the visible branch that `seq` also follows (or is): a page that
        holds a branch up to `seq` keeps what it holds up to there. 0 when none."""
        visible = set(self.path())
        at: int | None = seq
        while at is not None and at not in visible:
            at = self.parent.get(at)
        return at or 0


# Until a conversation has a second version of any message (`Conversation.branched`), its
# visible branch is all its messages in seq order and nothing has versions: then no tree is
# loaded (None below) and pages and history read messages by seq, as cheaply as a plain list.


def load(conversation: Conversation) -> Tree | None:
    """The conversation's tree, None while it has no branches."""
    return tree_of(conversation) if conversation.branched else None


def tree_of(conversation: Conversation) -> Tree:
    """The conversation's tree, branches or not (one query over three small columns)."""
    nodes = Message.objects.filter(conversation=conversation).order_by()
    return Tree(nodes.values_list("seq", "parent_seq", "public_id"), conversation.visible_leaf)


def visible_messages(
    conversation: Conversation, tree: Tree | None, after: int = 0
) -> list[Message]:
    """The messages of the visible branch after seq `after`, and any still streaming on it,
    oldest first."""
    shown = Message.objects.filter(conversation=conversation)
    if tree is not None:
        shown = shown.filter(seq__in=tree.path())
    wanted = shown.filter(Q(seq__gt=after) | Q(status=Message.Status.STREAMING))
    return list(wanted.order_by("seq"))


def latest_visible(
    conversation: Conversation, tree: Tree | None, limit: int, before: int = 0
) -> list[Message]:
    """The newest `limit` messages of the visible branch (before seq `before`, when given, on
    the branch that leads to it), oldest first."""
    found = Message.objects.filter(conversation=conversation)
    if tree is None:
        newest = found.filter(seq__lt=before) if before else found
        return list(reversed(newest.order_by("-seq")[:limit]))
    seqs = tree.path(before)[:-1] if before else tree.path()
    return list(found.filter(seq__in=seqs[-limit:]).order_by("seq"))


def base_for(tree: Tree | None, after_seq: int) -> int:
    """Where a page that holds a branch up to `after_seq` must be sent messages from."""
    return tree.base_for(after_seq) if tree is not None else after_seq


def base_of(message: Message, tree: Tree | None) -> int:
    """The seq of the message `message` follows (0: none): a frame that brings it as the first
    of its messages tells the page to keep what it holds up to there."""
    if tree is None:
        return message.seq - 1
    return tree.parent.get(message.seq) or 0


def wire(messages: Sequence[Message], tree: Tree | None) -> list[WireMessage]:
    """The messages' wire form with their versions (from their conversation's `tree`)."""
    if tree is None:
        return [m.to_wire() for m in messages]
    return [m.to_wire(tree.versions(m.seq)) for m in messages]


def wire_any(messages: Sequence[Message]) -> list[WireMessage]:
    """As `wire`, for messages of any conversations, whose trees are loaded here."""
    trees = {
        c.pk: load(c)
        for c in Conversation.objects.filter(pk__in={m.conversation_id for m in messages})
    }
    return [wire([m], trees.get(m.conversation_id))[0] for m in messages]
