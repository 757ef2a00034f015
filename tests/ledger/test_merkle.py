"""RFC 9162 Merkle tree: the RFC 6962 reference vectors, then exhaustive checks for small trees."""

import hashlib

import pytest

from ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

LEAF_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
LEAVES = [hashlib.sha256(b"\x00" + bytes.fromhex(x)).digest() for x in LEAF_INPUTS]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H = bytes.fromhex


@pytest.mark.parametrize("size", range(9))
def test_reference_roots(size):
    assert root(LEAVES[:size]).hex() == ROOTS[size]
    assert EMPTY_ROOT.hex() == ROOTS[0]


@pytest.mark.parametrize(
    ("index", "size", "proof"),
    [
        (0, 1, []),
        (
            0,
            8,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            [
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            1,
            5,
            [
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ],
)
def test_reference_inclusion_proofs(index, size, proof):
    assert [p.hex() for p in inclusion_proof(LEAVES[:size], index)] == proof
    assert verify_inclusion(LEAVES[index], index, size, [H(p) for p in proof], H(ROOTS[size]))


@pytest.mark.parametrize(
    ("old", "new", "proof"),
    [
        (1, 1, []),
        (
            1,
            8,
            [
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            [
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            [
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ],
)
def test_reference_consistency_proofs(old, new, proof):
    got = consistency_proof(LEAVES[:new], old) if old != new else []
    assert [p.hex() for p in got] == proof
    assert verify_consistency(old, new, H(ROOTS[old]), H(ROOTS[new]), [H(p) for p in proof])


def leaves(n):
    return [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(n)]


def test_every_inclusion_proof_below_70_verifies_and_no_wrong_one_does():
    all_leaves = leaves(70)
    for size in range(1, 70):
        tree_root = root(all_leaves[:size])
        for index in range(size):
            proof = inclusion_proof(all_leaves[:size], index)
            assert verify_inclusion(all_leaves[index], index, size, proof, tree_root)
            if size > 1:
                assert not verify_inclusion(all_leaves[(index + 1) % size], index, size, proof, tree_root)
                assert not verify_inclusion(all_leaves[index], (index + 1) % size, size, proof, tree_root)
                assert not verify_inclusion(all_leaves[index], index, size, proof[:-1], tree_root)


def test_every_consistency_proof_below_40_verifies_and_no_wrong_one_does():
    all_leaves = leaves(40)
    roots = [root(all_leaves[:n]) for n in range(41)]
    for new in range(1, 40):
        for old in range(1, new):
            proof = consistency_proof(all_leaves[:new], old)
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)
            assert not verify_consistency(old, new, roots[old], roots[new - 1], proof)
            assert not verify_consistency(old, new, node_hash(roots[old], roots[old]), roots[new], proof)
            forked = all_leaves[: old - 1] + [b"\xff" * 32] + all_leaves[old:new]
            assert not verify_consistency(old, new, roots[old], root(forked), consistency_proof(forked, old))


def test_compact_range_matches_full_root_at_every_size():
    tree = CompactRange()
    all_leaves = leaves(300)
    for size, leaf in enumerate(all_leaves, start=1):
        tree.append(leaf)
        if size in (1, 2, 3, 7, 8, 9, 255, 256, 257, 300):
            assert tree.root() == root(all_leaves[:size])
            assert len(tree.hashes) == bin(size).count("1")
    restored = CompactRange(tree.size, tree.hashes)
    restored.append(all_leaves[0])
    tree.append(all_leaves[0])
    assert restored.root() == tree.root()
    with pytest.raises(ValueError):
        CompactRange(3, [EMPTY_ROOT])


def test_many_inclusion_proofs_at_once_equal_one_at_a_time():
    all_leaves = leaves(1000)
    wanted = [0, 1, 2, 511, 512, 513, 998, 999]
    assert inclusion_proofs(all_leaves, wanted) == {i: inclusion_proof(all_leaves, i) for i in wanted}
    assert inclusion_proofs(all_leaves, []) == {}
