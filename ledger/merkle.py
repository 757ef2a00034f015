"""The RFC 9162 (Certificate Transparency v2) Merkle tree over a log's leaf hashes.

    leaf  = SHA-256(0x00 || record_bytes)       (ledger.record.leaf_hash)
    node  = SHA-256(0x01 || left || right)
    root of n > 1 leaves = node(root(first k), root(rest)), k the largest power of two < n

Inclusion proofs show that a record is leaf i of a tree of size n; consistency proofs show that
a tree of size n extends the tree of size m < n. Verification follows RFC 9162 §2.1.3.2 and
§2.1.4.2 to the letter. Checked against the RFC 6962 reference vectors in the tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The roots of the perfect subtrees covering leaves [0, size): O(log n) state, O(1) amortised
    append, the tree's root at any moment without touching the leaves again."""

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} has {bin(size).count('1')} hashes, not {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)  # largest subtree first

    def append(self, leaf: bytes) -> None:
        self.hashes.append(leaf)
        size = self.size
        while size & 1:  # each trailing 1 bit of the old size is a subtree the new leaf completes
            right = self.hashes.pop()
            self.hashes[-1] = node_hash(self.hashes[-1], right)
            size >>= 1
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for subtree in reversed(self.hashes[:-1]):
            acc = node_hash(subtree, acc)
        return acc


def root(leaves: Sequence[bytes]) -> bytes:
    tree = CompactRange()
    tree.extend(leaves)
    return tree.root()


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 §2.1.3.1, for the tree of all ``leaves``."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of size {len(leaves)}")
    proof: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root(leaves[lo : lo + k]))
            lo += k
    proof.reverse()
    return proof


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1: the tree of size ``old_size`` is a prefix of ``leaves``."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ValueError(f"no consistency proof from size {old_size} to {n}")
    return _subproof(leaves, old_size, 0, n, True)


def _subproof(leaves: Sequence[bytes], m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if complete else [root(leaves[lo:hi])]
    k = _split(n)
    if m <= k:
        return _subproof(leaves, m, lo, lo + k, complete) + [root(leaves[lo + k : hi])]
    return _subproof(leaves, m - k, lo + k, hi, False) + [root(leaves[lo : lo + k])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2."""
    if old_size == new_size:
        return not proof and old_root == new_root
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def inclusion_proofs(leaves: Sequence[bytes], indexes: Iterable[int]) -> dict[int, list[bytes]]:
    """PATH(i, D[n]) for many leaves at once: one pass over the tree, O(n + k log n) hashes."""
    wanted = sorted(set(indexes))
    if any(not 0 <= i < len(leaves) for i in wanted):
        raise ValueError(f"an index is outside the tree of size {len(leaves)}")
    proofs: dict[int, list[bytes]] = {i: [] for i in wanted}

    def walk(lo: int, hi: int, inside: list[int]) -> bytes:
        if not inside:
            return root(leaves[lo:hi])
        if hi - lo == 1:
            return leaves[lo]
        k = _split(hi - lo)
        left_ix = [i for i in inside if i < lo + k]
        right_ix = [i for i in inside if i >= lo + k]
        left, right = walk(lo, lo + k, left_ix), walk(lo + k, hi, right_ix)
        for i in left_ix:
            proofs[i].append(right)
        for i in right_ix:
            proofs[i].append(left)
        return node_hash(left, right)

    if wanted:
        walk(0, len(leaves), wanted)
    return proofs
