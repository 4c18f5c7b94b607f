"""Duplicate detection: pixel hashes, perceptual hashes, and near-duplicate clusters found by multi-index hashing.

Two crops are near duplicates when the Hamming distance of their 64-bit perceptual hashes (imagehash) is at most
`max_distance`. Clusters are the connected components of that relation, so a chain of re-encoded, resized and
slightly shifted copies ends in one cluster even when its ends differ by more than the threshold.

Finding the pairs does not compare all pairs. Multi-index hashing (Norouzi et al., 2012) cuts each hash into
`chunks` pieces; by the pigeonhole principle two hashes within distance d agree to within d // chunks bits on at
least one piece, so each piece is looked up, with that few bits flipped, in a sorted copy of the same piece of
every hash. Only those candidates get their full distance computed, with numpy.
"""

from __future__ import annotations

import hashlib
from itertools import combinations

import cv2
import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.transform import SimilarityTransform

HASH_KINDS = {"phash": imagehash.phash, "dhash": imagehash.dhash, "ahash": imagehash.average_hash,
              "whash": imagehash.whash}
HASH_BITS = 64  # hash_size 8: what the index below is built for


# Where a 112 px face crop's five landmarks sit after alignment (the widely used ArcFace template).
ALIGNED_LANDMARKS_112 = np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]])


def align_face(image: np.ndarray, landmarks) -> np.ndarray:
    """The crop warped so its landmarks land on a fixed template.

    Perceptual hashes are shift-sensitive: on real crops a 3 px shift moved phash by 6 bits (median), as much
    as the near-duplicate threshold. Two copies of one photo get slightly different MTCNN boxes, but their
    landmarks follow the face, so hashing the aligned crop removes that jitter. The least-squares similarity
    (Umeyama, via scikit-image) is deterministic, unlike a RANSAC fit.
    """
    size = image.shape[0]
    transform = SimilarityTransform.from_estimate(np.asarray(landmarks, float), ALIGNED_LANDMARKS_112 * size / 112)
    if not transform:
        return image
    return cv2.warpAffine(image, transform.params[:2], (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def perceptual_hash(image: np.ndarray, kind: str = "phash") -> int:
    """The 64-bit perceptual hash of an RGB uint8 image, as an int."""
    return int(str(HASH_KINDS[kind](Image.fromarray(image), hash_size=8)), 16)  # imagehash's hex, MSB first


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of the decoded pixels and their shape: equal for byte-different but pixel-identical files."""
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: low for blurred crops."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.bitwise_xor(a, b))


def near_pairs(hashes, max_distance: int, chunks: int = 4) -> np.ndarray:
    """Every index pair (i < j) of `hashes` (uint64) within `max_distance` bits, sorted."""
    h = np.asarray(hashes, dtype=np.uint64)
    uniq, inverse = np.unique(h, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1])
    found = [np.array(list(combinations(m, 2)), np.int64).reshape(-1, 2) for m in members if len(m) > 1]
    for u, v in _near_unique_pairs(uniq, max_distance, chunks):
        found.append(np.array(np.meshgrid(members[u], members[v])).reshape(2, -1).T)
    if not found:
        return np.empty((0, 2), np.int64)
    out = np.concatenate(found).astype(np.int64)
    out.sort(axis=1)
    return np.unique(out, axis=0)


def cluster(hashes, max_distance: int, chunks: int = 4) -> np.ndarray:
    """Near-duplicate cluster label per item (0..k-1, numbered in order of each cluster's first item)."""
    h = np.asarray(hashes, dtype=np.uint64)
    if h.size == 0:
        return np.empty(0, np.int64)
    uniq, inverse = np.unique(h, return_inverse=True)
    pairs = _near_unique_pairs(uniq, max_distance, chunks)
    return _first_appearance(_components(len(uniq), pairs)[inverse])


def _near_unique_pairs(uniq: np.ndarray, max_distance: int, chunks: int, block: int = 4096) -> np.ndarray:
    """Pairs (a < b) of distinct sorted hashes within `max_distance`, via the multi-index lookup."""
    n = len(uniq)
    width = HASH_BITS // chunks
    flips = max_distance // chunks
    masks = np.array([sum(1 << b for b in combo) for k in range(flips + 1) for combo in combinations(range(width), k)],
                     dtype=np.int64)
    found = []
    for c in range(chunks):
        piece = ((uniq >> np.uint64(c * width)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(piece, kind="stable")
        sorted_piece = piece[order]
        for start in range(0, n, block):
            query = np.arange(start, min(n, start + block))
            keys = (piece[query][:, None] ^ masks[None, :]).ravel()
            owners = np.repeat(query, len(masks))
            lo = np.searchsorted(sorted_piece, keys, "left")
            hi = np.searchsorted(sorted_piece, keys, "right")
            counts = hi - lo
            hit = counts > 0
            if not hit.any():
                continue
            counts, lo, owners = counts[hit], lo[hit], owners[hit]
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            a = np.repeat(owners, counts)
            b = order[np.repeat(lo, counts) + offsets]
            keep = a < b
            a, b = a[keep], b[keep]
            close = hamming(uniq[a], uniq[b]) <= max_distance
            found.append(np.stack([a[close], b[close]], axis=1))
    if not found:
        return np.empty((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    # scipy numbers components in traversal order; renumbering makes labels a function of the input order only
    _, first_index = np.unique(labels, return_index=True)
    rank = np.empty(len(first_index), np.int64)
    rank[np.argsort(first_index)] = np.arange(len(first_index))
    return rank[labels]


def cross_group_pairs(hashes, groups, max_distance: int) -> dict[str, int]:
    """Near-duplicate pairs within `max_distance` that join items of different groups (e.g. train and test), those
    inside one group, and the pairs across groups within twice the distance. The last are not a failure but a
    pointer for reviewers: e.g. the same photo with and without a drawn-on mask, in two classes, in two splits."""
    h = np.asarray(hashes, dtype=np.uint64)
    loose = near_pairs(h, 2 * max_distance) if len(h) else np.empty((0, 2), np.int64)
    strict = loose[hamming(h[loose[:, 0]], h[loose[:, 1]]) <= max_distance]  # a subset of the loose pairs
    groups = np.asarray(groups)
    cross = int(np.count_nonzero(groups[strict[:, 0]] != groups[strict[:, 1]])) if len(strict) else 0
    return {"cross": cross, "within": len(strict) - cross,
            "loose_cross": int(np.count_nonzero(groups[loose[:, 0]] != groups[loose[:, 1]])) if len(loose) else 0}


# -- choosing what to keep ------------------------------------------------------------------------------------

ITEM_COLUMNS = ("crop_id", "source_id", "label", "file", "cluster", "cluster_size", "representative", "outcome",
                "distance", "phash", "pixel_sha256", "face_px", "probability", "sharpness")
CLUSTER_COLUMNS = ("cluster", "size", "labels", "conflict", "representative", "members")


def quality_key(item: dict) -> tuple:
    """Which copy of a cluster to keep: the larger face in its source, then the surer detection, then the
    sharper crop; the smaller crop id breaks ties so the choice never depends on input order."""
    return (-float(item["face_px"]), -float(item["probability"]), -float(item["sharpness"]), item["crop_id"])


def resolve_clusters(items: list[dict], max_distance: int) -> tuple[list[dict], list[dict]]:
    """Cluster `items` (dicts with crop_id, label, phash as int, pixel_sha256 and quality fields) and decide.

    Returns (item rows with cluster, representative and outcome, cluster rows). Outcomes: `kept` (the
    representative of a single-label cluster), `label_conflict` (the representative of a cluster whose members
    carry different labels: nothing is picked silently), `exact_duplicate` (same decoded pixels as the
    representative), `near_duplicate`.
    """
    labels = cluster([it["phash"] for it in items], max_distance)
    members: dict[int, list[int]] = {}
    for index, c in enumerate(labels):
        members.setdefault(int(c), []).append(index)
    rows: list[dict] = [{} for _ in items]
    cluster_rows = []
    for c in sorted(members):
        order = sorted(members[c], key=lambda i: quality_key(items[i]))
        rep = items[order[0]]
        names = sorted({items[i]["label"] for i in order})
        conflict = len(names) > 1
        for i in order:
            it = items[i]
            if i == order[0]:
                outcome = "label_conflict" if conflict else "kept"
            elif it["pixel_sha256"] == rep["pixel_sha256"]:
                outcome = "exact_duplicate"
            else:
                outcome = "near_duplicate"
            rows[i] = {**it, "phash": f"{it['phash']:016x}", "cluster": c, "cluster_size": len(order),
                       "representative": rep["crop_id"], "outcome": outcome,
                       "distance": (it["phash"] ^ rep["phash"]).bit_count()}
        if len(order) > 1:
            cluster_rows.append({"cluster": c, "size": len(order), "labels": ";".join(names),
                                 "conflict": int(conflict), "representative": rep["crop_id"],
                                 "members": " ".join(items[i]["crop_id"] for i in order)})
    return rows, cluster_rows
