"""Subject references: what only this server can open, from any thread, and nothing else opens."""

from __future__ import annotations

import os
import threading

from server.credentials.subject_ref import Subject, SubjectRefs


def test_references_open_to_their_subject_only_with_the_same_master_key() -> None:
    key = os.urandom(32)
    refs = SubjectRefs(key)
    sealed = [refs.seal(account, 7, 1234) for account in range(1, 200)]
    assert len(set(sealed)) == len(sealed) and all(len(ref) == 16 for ref in sealed)
    assert [refs.open(ref) for ref in sealed] == [Subject(account, 7, 1234) for account in range(1, 200)]
    # Another server's master key, a changed byte, a wrong length: not one of ours.
    assert all(SubjectRefs(os.urandom(32)).open(ref) is None for ref in sealed[:20])
    assert refs.open(bytes([sealed[0][0] ^ 1]) + sealed[0][1:]) is None
    assert refs.open(sealed[0][:15]) is None
    # A reference sealed later opens the same: no state carries over from one block to the next.
    assert refs.open(refs.seal(5, 7, 1234)) == Subject(5, 7, 1234)
    assert SubjectRefs(key).seal(5, 7, 1234) == sealed[4]


def test_threads_seal_and_open_at_once() -> None:
    refs = SubjectRefs(os.urandom(32))
    wrong: list[tuple[int, Subject | None]] = []

    def work(offset: int) -> None:
        for account in range(offset, offset + 2000):
            opened = refs.open(refs.seal(account, account % 5, account))
            if opened != Subject(account, account % 5, account):
                wrong.append((account, opened))

    threads = [threading.Thread(target=work, args=(1 + i * 10_000,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
