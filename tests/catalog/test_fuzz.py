"""No input crashes the feed normalizer: random mutations of real feeds (seeded)."""

import random

from ysh.catalog.normalize import normalize_feed

from ..conftest import SAMPLE_CATALOG

NASTY = [b";", b",", b'"', b"\n", b"\r\n", b"\x00", b"\xff", b"\xef\xbb\xbf", b"NaN", b"Infinity", b"1e400",
         b"9" * 50, b"R$", b"-", b"{", b"[", b"]", b"}", b"\\", b"\xc3", "ç".encode(), "½".encode(), b"\t"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        position = rng.randrange(len(data) + 1)
        action = rng.random()
        if action < 0.5:
            data[position:position] = rng.choice(NASTY)
        elif action < 0.8 and data:
            del data[position:position + rng.randint(1, 20)]
        else:
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(data)


def test_random_mutations_of_the_sample_feeds_never_raise():
    rng = random.Random(20261125)
    feeds = [(p.name, p.read_bytes()) for p in sorted(SAMPLE_CATALOG.iterdir())]
    for i in range(600):
        name, data = feeds[i % len(feeds)]
        result = normalize_feed(mutate(data, rng), name, "fuzz")
        # every record is accounted for: an item, a quarantined row or a duplicate
        assert result.rows == len(result.items) + len(result.quarantine) + result.duplicate_skus or \
            any(q.line == 0 for q in result.quarantine)
