"""A Gaussian process with a Tanimoto kernel on Morgan fingerprints: a model that learns from few.

The kernel is ``k(a, b) = s² · T(a, b) + σ² δ(a, b)`` with ``T`` the Tanimoto (Jaccard)
similarity of bit fingerprints (``kernel="minmax"``: the MinMax similarity of count
fingerprints, ``Σ min(a_i, b_i) / Σ max(a_i, b_i)``; see :data:`KERNELS`), plus a constant
mean ``c``. At each fit the three
hyperparameters maximize the log marginal likelihood: for a noise-to-signal ratio
``r = σ²/s²`` the best ``c`` and ``s²`` have closed forms, so the search is one-dimensional over
``log r``, and one eigendecomposition of the training kernel makes each trial O(n): a grid then
a bounded Brent refinement, deterministic. ``noise=`` fixes ``σ`` instead (then ``s²`` is
searched the same way). ``mean="training"`` fixes ``c`` at the average training IE instead of
its likelihood estimate (see :data:`PRIOR_MEANS`).

The predictive standard deviation *includes* the noise ``σ``: it is the spread of what xTB will
say for the molecule, so ``|truth - mean| <= std`` about 68 % of the time (the calibration the
kit reports), and two molecules the fingerprint cannot tell apart are not predicted with false
certainty. Acquisitions ranking by it rank by ``sqrt(latent variance + σ²)``, the same order as
the latent variance.

Scoring a search space runs in blocks: the compiled kernel (:mod:`course_utils.ml.tanimoto`)
fills a float32 block and the mean in float64 (MinMax through the same loop, on the
count levels of each block: :func:`course_utils.ml.tanimoto.expand_counts`); the latent variance is
``s² (1 - ||L⁻¹ t*||²)`` with ``L`` the Cholesky factor of ``T + rI``, computed as a few GEMMs
with row blocks of ``L⁻¹`` (triangular, so ~5/8 of a full product, at BLAS speed; measured
faster than LAPACK's triangular solve) and never a search-space-by-training matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import scipy.linalg
from scipy.optimize import minimize_scalar

from course_utils.ml.fingerprints import count_fingerprints, fingerprints
from course_utils.ml.model_options import (
    check_fingerprint_options,
    check_positive,
    check_training_data,
)
from course_utils.ml.morgan import FingerprintKind, as_smiles_list
from course_utils.ml.neighbours import popcounts

__all__ = ["TanimotoGP"]

#: Search range of the noise-to-signal variance ratio r = σ²/s²: below 1e-4 the training
#: kernel is needlessly ill-conditioned for the float32 scoring; above 1e2 the GP is a constant.
RATIO_BOUNDS = (1e-4, 1e2)

#: Grid points over log r before the Brent refinement: the profile is smooth but can have two
#: local optima on small training sets.
GRID_POINTS = 41

#: Query rows per scoring block: a float32 block of 8,192 x 1,000 is 33 MB.
BLOCK_ROWS = 8192

#: Row blocks of L⁻¹ for the variance GEMMs (more blocks: fewer flops, smaller GEMMs).
VARIANCE_BLOCKS = 4


#: Where the constant mean comes from. ``fitted``: the marginal-likelihood estimate, the
#: generalized least-squares mean, which discounts clusters of similar molecules, so it stays
#: near the average of the whole space even when a search has gathered a cluster of high IEs.
#: The better predictor, but molecules unlike anything trained are then predicted average and
#: a greedy search keeps mining its first good cluster. ``training``: the plain average of the
#: training IEs, which a search raises as it finds good molecules: the unexplored space looks
#: as good as the average pick, so greedy picks explore. Measured in notebook 10.
PRIOR_MEANS = ("fitted", "training")

#: The similarity. ``tanimoto`` (the default): of Morgan bit fingerprints (which environments a
#: molecule has). ``minmax``: of Morgan count fingerprints (how many times too), ``Σ min / Σ max``;
#: it tells apart molecules whose bit fingerprints are the same (cyclohexane and cycloheptane
#: share all three bits at radius 2: Tanimoto 1, MinMax 6/7). Measured by
#: ``benchmarks/bench_models.py --kernels`` (issue 29): MinMax predicts better (MAE on 3,000
#: held-out molecules, 10 seeds: lower at 100, 400 and 1,600 training molecules in 10 of 10
#: seeds, 0.242 against 0.259 eV at 400, 0.202 against 0.227 at 1,600; the same at 25; std
#: coverage the same; scoring time the same) and searches as well with ``mean=training`` and
#: ei, but with the fitted mean it searches worse under greedy and ucb (20 replayed seeds:
#: 5 and 8 runs reach QM9's top 10 against 13 and 15): a better fit makes the fitted-mean GP
#: mine its first cluster harder. So Tanimoto stays the default and MinMax is an option.
KERNELS = ("tanimoto", "minmax")


class TanimotoGP:
    """Gaussian process regression on Morgan fingerprints with a Tanimoto (or MinMax) kernel.

    Options: ``radius`` and ``length`` of the Morgan fingerprint; ``noise``: a fixed noise
    standard deviation in eV, or None (default) to fit it; ``mean``: one of
    :data:`PRIOR_MEANS`; ``kernel``: one of :data:`KERNELS`.
    """

    name = "gp"
    min_training = 2  # a mean and a spread need two molecules
    #: :meth:`sample` draws ``N(mean, std)`` of :meth:`predict`: a caller holding the
    #: predictions (Thompson sampling over a scored search space) draws them without rescoring.
    marginal_samples = True

    def __init__(self, radius: int = 2, length: int = 2048, noise: float | None = None,
                 mean: str = "fitted", kernel: str = "tanimoto") -> None:
        self.radius, self.length = check_fingerprint_options(self.name, radius, length)
        self.noise = None if noise is None else check_positive(self.name, "noise", noise)
        if mean not in PRIOR_MEANS:
            raise ValueError(f"gp option mean must be one of {', '.join(PRIOR_MEANS)}, "
                             f"got {mean!r}")
        self.mean = mean
        if kernel not in KERNELS:
            raise ValueError(f"gp option kernel must be one of {', '.join(KERNELS)}, "
                             f"got {kernel!r}")
        self.kernel = kernel
        self.fitted: dict[str, float] = {}

    def fingerprint_kinds(self) -> list[FingerprintKind]:
        """The fingerprints it reads of every molecule it scores (prepared once per space)."""
        form = "counts" if self.kernel_name == "minmax" else "bits"
        return [FingerprintKind(form, self.radius, self.length)]

    # -------------------------------------------------------------------------- training

    def fit(self, smiles: Sequence[str], ie: np.ndarray) -> Self:
        """Store the training fingerprints and fit the hyperparameters, then factorize."""
        # deferred: numba compiles the kernel (~2 s) on first use; importing gp stays cheap
        from course_utils.ml.tanimoto import expand_counts, minmax_encoding, tanimoto_kernel

        smiles = as_smiles_list(smiles)
        y = check_training_data(self.name, smiles, ie, self.min_training)
        if self.kernel_name == "minmax":
            entries = count_fingerprints(smiles, radius=self.radius, length=self.length)
            self.encoding = minmax_encoding(entries, self.length)
            fps, train_counts = expand_counts(entries, self.encoding)
        else:
            fps = fingerprints(smiles, radius=self.radius, length=self.length)
            train_counts = popcounts(fps)
        similarity = tanimoto_kernel(fps, fps, train_counts, train_counts)
        eigenvalues, eigenvectors = np.linalg.eigh(similarity)
        profile = _Profile(np.clip(eigenvalues, 0.0, None), eigenvectors.T @ y,
                           eigenvectors.T @ np.ones_like(y),
                           fixed_mean=float(y.mean()) if self.prior_mean == "training" else None)
        signal_var, ratio = self._hyperparameters(profile)
        mean = profile.mean(ratio)

        chol = scipy.linalg.cholesky(similarity + ratio * np.eye(len(y)), lower=True)
        alpha = scipy.linalg.cho_solve((chol, True), y - mean)
        chol_inv = scipy.linalg.solve_triangular(chol, np.eye(len(y)), lower=True)
        self.train_fps = fps
        self.train_words = np.ascontiguousarray(fps.T)
        self.train_counts = train_counts
        self.alpha = alpha
        self.variance_blocks = _variance_blocks(chol_inv)
        self.fitted = {
            "n_train": len(y),
            "signal_std_ev": math.sqrt(signal_var),
            "noise_std_ev": math.sqrt(signal_var * ratio),
            "constant_mean_ev": float(mean),
            "log_marginal_likelihood": float(profile.log_likelihood(ratio, signal_var)),
        }
        return self

    def _hyperparameters(self, profile: _Profile) -> tuple[float, float]:
        """(s², r) maximizing the marginal likelihood; with a fixed noise, over s² alone."""
        if self.noise is None:
            def objective(log_ratio: float) -> float:
                ratio = math.exp(log_ratio)
                return -profile.log_likelihood(ratio, profile.best_signal_var(ratio))

            ratio = math.exp(_minimize(objective, *np.log(RATIO_BOUNDS)))
            return profile.best_signal_var(ratio), ratio
        noise_var = self.noise**2

        def fixed_noise(log_signal: float) -> float:
            signal_var = math.exp(log_signal)
            return -profile.log_likelihood(noise_var / signal_var, signal_var)

        lo, hi = np.log(noise_var / RATIO_BOUNDS[1]), np.log(noise_var / RATIO_BOUNDS[0])
        signal_var = math.exp(_minimize(fixed_noise, lo, hi))
        return signal_var, noise_var / signal_var

    # ------------------------------------------------------------------------ prediction

    def predict(self, smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and predictive standard deviation (noise included) in eV, input order."""
        if not self.fitted:
            raise ValueError("gp: fit the model before predicting")
        smiles = as_smiles_list(smiles)
        if self.kernel_name == "minmax":
            return self._predict(count_fingerprints(smiles, radius=self.radius,
                                                    length=self.length))
        return self._predict(fingerprints(smiles, radius=self.radius, length=self.length))

    def predict_fps(self, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` on packed bit fingerprints (a replay has the space's already); the
        MinMax kernel takes count entries instead (:func:`count_fingerprints`)."""
        if not self.fitted:
            raise ValueError("gp: fit the model before predicting")
        if self.kernel_name == "minmax" and fps.dtype != np.uint32:
            raise ValueError("gp: the minmax kernel scores count fingerprints (count_fingerprints)")
        if self.kernel_name == "tanimoto" and fps.dtype != np.uint64:
            raise ValueError("gp: the tanimoto kernel scores packed bit fingerprints (fingerprints)")
        return self._predict(fps)

    def _predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scoring in blocks: packed bits (Tanimoto) or count entries, expanded per block."""
        # deferred: numba compiles the kernel (~2 s) on first use; importing gp stays cheap
        from course_utils.ml.tanimoto import expand_counts, fill_tanimoto

        minmax = self.kernel_name == "minmax"
        n_query, n_train = len(features), self.fitted["n_train"]
        counts = None if minmax else popcounts(features)
        levels = (np.empty((min(BLOCK_ROWS, n_query), self.encoding.words), dtype=np.uint64)
                  if minmax else None)
        mean = np.empty(n_query)
        explained = np.empty(n_query)
        block = np.empty((min(BLOCK_ROWS, n_query), n_train), dtype=np.float32)
        for start in range(0, n_query, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n_query)
            sims = block[: stop - start]
            if minmax:
                fps, query_counts = expand_counts(features[start:stop], self.encoding, levels)
            else:
                fps, query_counts = features[start:stop], counts[start:stop]
            fill_tanimoto(fps, self.train_words, query_counts, self.train_counts, self.alpha,
                          sims, mean[start:stop])
            explained[start:stop] = _explained(sims, self.variance_blocks)
        mean += self.fitted["constant_mean_ev"]
        signal_var = self.fitted["signal_std_ev"] ** 2
        latent = signal_var * np.clip(1.0 - explained, 0.0, None)
        return mean, np.sqrt(latent + self.fitted["noise_std_ev"] ** 2)

    def sample(self, smiles: Sequence[str], n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws per molecule, shape ``(n, len(smiles))``, for Thompson sampling.

        Independent Gaussian marginals ``N(mean, std)`` per molecule, not joint posterior
        samples: a joint draw over a search space needs its full covariance, far too large,
        and a batch pick from marginal draws still favours high means and high uncertainty.
        """
        mean, std = self.predict(smiles)
        return mean + std * rng.standard_normal((n, len(mean)))

    @property
    def prior_mean(self) -> str:
        """The ``mean`` option (versions saved before it existed fitted theirs)."""
        return getattr(self, "mean", "fitted")

    @property
    def kernel_name(self) -> str:
        """The ``kernel`` option (versions saved before it existed used Tanimoto)."""
        return getattr(self, "kernel", "tanimoto")

    def describe(self) -> dict[str, Any]:
        """Name, options and fitted hyperparameters (eV), JSON-safe for the lineage records."""
        return {"name": self.name,
                "options": {"radius": self.radius, "length": self.length, "noise": self.noise,
                            "mean": self.prior_mean, "kernel": self.kernel_name},
                "fitted": dict(self.fitted)}


class _Profile:
    """The marginal likelihood in the eigenbasis of the training similarity ``T = U Λ Uᵀ``.

    With ``A = T + rI``: ``A⁻¹ = U diag(1/(λ+r)) Uᵀ`` and ``log|A| = Σ log(λ+r)``, so for a
    ratio ``r`` the best constant mean, the best signal variance and the likelihood are sums
    over the n eigenvalues. A ``fixed_mean`` replaces the best constant mean.
    """

    def __init__(self, eigenvalues: np.ndarray, y_rot: np.ndarray, ones_rot: np.ndarray,
                 fixed_mean: float | None = None) -> None:
        self.eigenvalues, self.y_rot, self.ones_rot = eigenvalues, y_rot, ones_rot
        self.fixed_mean = fixed_mean

    def mean(self, ratio: float) -> float:
        if self.fixed_mean is not None:
            return self.fixed_mean
        w = 1.0 / (self.eigenvalues + ratio)
        return float(np.sum(w * self.y_rot * self.ones_rot) / np.sum(w * self.ones_rot**2))

    def quadratic(self, ratio: float) -> float:
        """``(y-c)ᵀ A⁻¹ (y-c)`` at the best (or the fixed) ``c``."""
        residual = self.y_rot - self.mean(ratio) * self.ones_rot
        return float(np.sum(residual**2 / (self.eigenvalues + ratio)))

    def best_signal_var(self, ratio: float) -> float:
        return self.quadratic(ratio) / len(self.eigenvalues)

    def log_likelihood(self, ratio: float, signal_var: float) -> float:
        """log p(y) for ``K = s²(T + rI)`` and the best (or the fixed) constant mean."""
        n = len(self.eigenvalues)
        log_det = np.sum(np.log(self.eigenvalues + ratio)) + n * math.log(signal_var)
        return -0.5 * (self.quadratic(ratio) / signal_var + log_det + n * math.log(2 * math.pi))


def _minimize(objective: Any, lo: float, hi: float) -> float:
    """Global over a grid, then Brent within the best point's neighbours: robust and bounded."""
    grid = np.linspace(lo, hi, GRID_POINTS)
    values = [objective(x) for x in grid]
    best = int(np.argmin(values))
    left, right = grid[max(best - 1, 0)], grid[min(best + 1, GRID_POINTS - 1)]
    result = minimize_scalar(objective, bounds=(left, right), method="bounded",
                             options={"xatol": 1e-4})
    return float(result.x) if result.fun <= values[best] else float(grid[best])


def _variance_blocks(chol_inv: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Row blocks of ``L⁻¹`` as (columns used, float32 block transposed) for the GEMMs."""
    n = len(chol_inv)
    edges = np.linspace(0, n, min(VARIANCE_BLOCKS, n) + 1).astype(int)
    return [(int(stop), np.ascontiguousarray(chol_inv[start:stop, :stop].T, dtype=np.float32))
            for start, stop in zip(edges[:-1], edges[1:], strict=True)]


def _explained(sims: np.ndarray, blocks: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """``||L⁻¹ t*||²`` per query row: the share of the prior variance the training explains."""
    total = np.zeros(len(sims), dtype=np.float64)
    for columns, block in blocks:
        product = sims[:, :columns] @ block
        total += np.einsum("ij,ij->i", product, product)
    return total
