"""Names a question asks about that no article mentions (Velero, k3s, WSL2 …).

A near-topic question about a product the articles never mention shares every other word
with them — namespaces, backups, Pods — so retrieval finds confident-looking passages; the
absent name is what gives it away.  Used by the assistant (such a question is not covered)
and by the knowledge-gap report (which names people ask about that nothing covers).
"""

from __future__ import annotations

import threading

from qa.questions import as_asked, mention_forms, named_terms

CACHE_MAX = 4096


class MentionIndex:
    """Whether the served index mentions a name: one lexical lookup per name and form, cached
    for the life of one generation (the store is read-only while it is served)."""

    def __init__(self, store):
        self.store = store  # a qa.vectors.base.VectorIndex
        self._seen: dict[str, bool] = {}
        self._lock = threading.Lock()

    def mentions(self, term: str) -> bool:
        found = self._seen.get(term)
        if found is None:
            found = any(all(self.store.lexical([t], 1) for t in ways) for ways in mention_forms(term))
            with self._lock:
                if len(self._seen) >= CACHE_MAX:
                    self._seen.clear()
                self._seen[term] = found
        return found

    def missing(self, question: str) -> list[str]:
        """The question's names that no passage mentions, as the question spells them."""
        return [as_asked(question, t) for t in named_terms(question) if not self.mentions(t)]
