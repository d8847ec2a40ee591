"""Neighbour lists of crystal structures as numpy arrays, in-process or in worker processes.

numpy and pymatgen only (no torch), so worker processes start fast and cannot inherit torch's
threads. A structure is first reduced to its site arrays (:func:`site_arrays`, cheap, needs the
``Structure``); the neighbour search (:func:`graph_arrays`) needs only those arrays, which are all
that travels to a worker process. :func:`graph_batches` reads any iterable of structures lazily, one batch
at a time, so memory does not grow with its length.
"""

from __future__ import annotations

import math
import multiprocessing
import warnings
import weakref
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from itertools import islice

import numpy as np

CUTOFF = 8.0
MAX_NEIGHBORS = 12
NUMERICAL_TOL = 1e-8  # pymatgen's: sites closer than this are the same site
TIE_TOL = 1e-8  # Å: neighbours whose distances differ by less are equally far (a tie)
# Å: no two atoms of a real crystal are this close (the default tolerance of pymatgen's Structure.is_valid; the
# shortest bond, H2's, is 0.74 Å): closer sites are duplicated or misplaced
MIN_DISTANCE = 0.5

_warned = weakref.WeakValueDictionary()  # id -> each Structure already warned about, so that it is warned about once


def check_structure(structure) -> None:
    """Raise a ``TypeError``/``ValueError`` saying why ``structure`` cannot become a graph."""
    from pymatgen.core import DummySpecies, IStructure

    if not isinstance(structure, IStructure):
        raise TypeError(
            f"expected a pymatgen Structure, got {type(structure).__name__}"
            + (" (a Molecule has no lattice; put it in a box first)" if type(structure).__name__ == "Molecule" else "")
        )
    if len(structure) == 0:
        raise ValueError("the structure has no sites")
    if not structure.is_ordered:
        raise ValueError(
            "the structure is disordered (partial occupancies); crystal graphs need one element per site. "
            "Order it first, e.g. with pymatgen's OrderDisorderedStructureTransformation"
        )
    for i, species in enumerate(structure.species):
        if isinstance(species, DummySpecies):  # its atomic number would be a hash of its symbol
            raise ValueError(f"site {i} holds the dummy species {species}, not a chemical element; "
                             "crystal graphs need elements H to Og")
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)) or not math.isfinite(structure.volume) or structure.volume < 1e-6:
        raise ValueError(f"the lattice is degenerate (volume {structure.volume!r} Å^3)")
    if not np.all(np.isfinite(structure.frac_coords)):
        raise ValueError("the structure has non-finite site coordinates")


def site_arrays(structure) -> dict:
    """The checked sites of ``structure``: ``atomic_numbers``, ``frac_coords``, ``cart_coords`` (pymatgen's own,
    so that neighbour distances are bit for bit pymatgen's), ``lattice`` (rows) and ``pbc``."""
    check_structure(structure)
    return {
        "atomic_numbers": np.array(structure.atomic_numbers, dtype=np.int64),
        "frac_coords": np.asarray(structure.frac_coords, dtype=np.float64),
        "cart_coords": np.ascontiguousarray(structure.cart_coords, dtype=np.float64),
        "lattice": np.array(structure.lattice.matrix, dtype=np.float64),
        "pbc": np.array(structure.pbc, dtype=np.int64),
    }


def graph_arrays(sites: dict, cutoff: float = CUTOFF, max_neighbors: int | None = MAX_NEIGHBORS) -> dict:
    """Crystal graph arrays (see :mod:`matssl_featurizers.graphs`) of :func:`site_arrays`.

    The same search as pymatgen's ``Structure.get_neighbor_list`` (``find_points_in_spheres``, self
    pairs dropped), then the ``max_neighbors`` nearest per centre; among neighbours equally far (within
    ``TIE_TOL``) the lower site index, then image, comes first, so the graph does not depend on
    the last bits of the coordinates.
    ``max_neighbors=None`` keeps every neighbour within ``cutoff``.

    Besides the graph, ``overlap`` is ``(i, j, distance)`` of the closest two distinct sites where they are
    closer than ``MIN_DISTANCE`` (each site's nearest neighbour is kept, so the kept edges hold that pair),
    else ``None``.
    """
    from pymatgen.optimization.neighbors import find_points_in_spheres

    cart = sites["cart_coords"]
    centers, neighbors, images, distances = find_points_in_spheres(
        cart, cart, r=cutoff, pbc=np.ascontiguousarray(sites["pbc"]), lattice=np.ascontiguousarray(sites["lattice"]),
        tol=NUMERICAL_TOL)
    other = ~((centers == neighbors) & (distances <= NUMERICAL_TOL))
    centers, neighbors, images, distances = centers[other], neighbors[other], images[other], distances[other]
    if max_neighbors is None:
        max_neighbors = max(len(centers), 1)
    # Keep the ``max_neighbors`` nearest per centre: sort by centre and distance, where distances closer than
    # TIE_TOL count as equal (a tie) and ties go to the lower neighbour index, then image. Crystals are full of
    # equidistant neighbours, so without this the last bits of the coordinates (which vary with how and where
    # they were computed) would decide which of them make the twelve.
    by_distance = np.argsort(centers * (cutoff + 1.0) + distances, kind="stable")  # by centre, then distance
    c, d = centers[by_distance], distances[by_distance]
    closer = np.ones(len(d), dtype=bool)
    closer[1:] = (c[1:] != c[:-1]) | (d[1:] - d[:-1] > TIE_TOL)
    rank = np.cumsum(closer)  # along by_distance; the same for ties
    starts, ends = np.searchsorted(c, c, side="left"), np.searchsorted(c, c, side="right")
    last = rank[np.minimum(starts + max_neighbors, ends) - 1]  # the rank of each centre's max_neighbors-th nearest
    near = rank <= last  # those nearest and every neighbour tied with the last of them
    candidates, rank = by_distance[near], rank[near]
    image = np.rint(images[candidates]).astype(np.int64)
    shift = int(np.abs(image).max(initial=0))
    width = 2 * shift + 1
    site_then_image = ((neighbors[candidates].astype(np.int64) * width + image[:, 0] + shift) * width
                       + image[:, 1] + shift) * width + image[:, 2] + shift
    order = candidates[np.lexsort((site_then_image, rank))]
    centers, neighbors, images, distances = centers[order], neighbors[order], images[order], distances[order]
    starts = np.searchsorted(centers, centers, side="left")
    keep = (np.arange(len(centers)) - starts) < max_neighbors
    centers, neighbors, images, distances = centers[keep], neighbors[keep], images[keep], distances[keep]
    close = np.flatnonzero((centers != neighbors) & (distances < MIN_DISTANCE))
    closest = close[np.argmin(distances[close])] if len(close) else None
    overlap = None if closest is None else (*sorted((int(centers[closest]), int(neighbors[closest]))),
                                            float(distances[closest]))
    return {
        "atomic_numbers": sites["atomic_numbers"],
        "frac_coords": sites["frac_coords"],
        "lattice": sites["lattice"],
        "edge_index": np.stack([neighbors, centers]).astype(np.int64),
        "edge_image": np.rint(images).astype(np.int64),
        "distances": distances,
        "overlap": overlap,
    }


def warn_overlap(structure, arrays, stacklevel: int = 1) -> None:
    """Warn where the graph ``arrays`` of ``structure`` found two overlapping sites (``overlap``), once per
    ``Structure`` object: a hybrid featurizer searches the neighbours of each structure more than once."""
    if not isinstance(arrays, dict) or arrays["overlap"] is None or _warned.get(id(structure)) is structure:
        return
    _warned[id(structure)] = structure
    i, j, distance = arrays["overlap"]
    warnings.warn(f"sites {i} and {j} of {structure.composition.reduced_formula} are {distance:.3f} Å apart, closer "
                  f"than any two atoms can be ({MIN_DISTANCE} Å): duplicated or misplaced sites?", UserWarning,
                  stacklevel=stacklevel + 1)


def neighbor_arrays(structure, cutoff: float = CUTOFF, max_neighbors: int | None = MAX_NEIGHBORS) -> dict:
    """Numpy arrays of the crystal graph of ``structure``; warns where two of its sites overlap."""
    arrays = graph_arrays(site_arrays(structure), cutoff, max_neighbors)
    warn_overlap(structure, arrays, stacklevel=2)
    return arrays


def _graphs_or_errors(sites: list, cutoff: float, max_neighbors: int) -> list:
    """:func:`graph_arrays` of each entry, or the exception it raised; entries that are already exceptions pass."""
    out = []
    for entry in sites:
        try:
            out.append(entry if isinstance(entry, Exception) else graph_arrays(entry, cutoff, max_neighbors))
        except Exception as err:
            out.append(err)
    return out


def _sites_or_errors(structures: list) -> list:
    """:func:`site_arrays` of each structure, or the exception that says why it cannot become a graph."""
    out = []
    for structure in structures:
        try:
            out.append(site_arrays(structure))
        except Exception as err:
            out.append(err)
    return out


def worker_pool(n_workers: int) -> ProcessPoolExecutor:
    """Processes for :func:`graph_batches`, started with ``spawn``: they never inherit torch's threads
    (a forked child of a process running torch can hang), and this module needs only numpy and pymatgen."""
    return ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"))


def graph_batches(structures, batch_size: int, pool: ProcessPoolExecutor | None = None, in_flight: int = 2,
                  cutoff: float = CUTOFF, max_neighbors: int = MAX_NEIGHBORS):
    """Yield, per ``batch_size`` consecutive structures of the iterable ``structures`` (read lazily), a
    list with the graph arrays of each, or the exception that says why it has none.

    With a ``pool`` (:func:`worker_pool`) the neighbour search runs in its processes while the caller
    uses the previous batches; at most ``in_flight`` batches are submitted ahead. Overlapping sites are
    warned about here, in the caller's process.
    """
    iterator = iter(structures)
    batches = iter(lambda: list(islice(iterator, batch_size)), [])
    if pool is None:
        done = ((batch, _graphs_or_errors(_sites_or_errors(batch), cutoff, max_neighbors)) for batch in batches)
    else:
        done = _pooled(batches, pool, in_flight, cutoff, max_neighbors)
    for batch, graphs in done:
        for structure, graph in zip(batch, graphs):
            warn_overlap(structure, graph, stacklevel=2)
        yield graphs


def _pooled(batches, pool: ProcessPoolExecutor, in_flight: int, cutoff: float, max_neighbors: int):
    """``(batch, graphs)`` per batch of structures, the neighbour search run in ``pool``, at most ``in_flight``
    batches submitted ahead."""
    pending = deque()
    for batch in batches:
        pending.append((batch, pool.submit(_graphs_or_errors, _sites_or_errors(batch), cutoff, max_neighbors)))
        if len(pending) >= in_flight:
            batch, future = pending.popleft()
            yield batch, future.result()
    for batch, future in pending:
        yield batch, future.result()
