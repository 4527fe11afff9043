"""Matrix factorisation from ``implicit``: alternating least squares and Bayesian personalised ranking.

ALS reads the weighted evidence as confidence (Hu, Koren and Volinsky): ``c = 1 + alpha * |w|`` with
preference 1 where ``w > 0`` and 0 where ``w < 0``, so a dismissal raises the confidence that the member
does not want the offer instead of breaking the solver (implicit takes a negative entry to mean exactly
that). BPR learns from which offers a member responded to positively; it ignores weights and dismissals.
Fits are single-BLAS-threaded (``threadpool_limits``) as implicit asks. For a fixed ``random_state``
ALS repeats exactly with any ``num_threads`` (each row is solved on its own); BPR only with
``num_threads=1``, since its parallel SGD updates shared offer factors without locks. With
``device="cuda"`` the fit runs on implicit's GPU models (``models.devices``); the factors are copied back
to the host, so everything after the fit (export, fold-in, saving) is the same as on the CPU.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from models.base import Embeddings, FloatArray, Recommender, TrainingSet
from models.devices import host, resolve_device
from recsys.errors import ModelError

BoolArray = npt.NDArray[np.bool_]


def confidence(interactions: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Signed confidence for implicit's ALS: ``sign(w) * (1 + alpha * |w|)`` on every stored entry."""
    matrix = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()
    matrix.data = (np.sign(matrix.data) * (1.0 + alpha * np.abs(matrix.data))).astype(np.float32)
    matrix.sort_indices()
    return matrix


def least_squares_fold_in(
    item_factors: FloatArray, interactions: sp.csr_matrix, regularization: float, alpha: float
) -> FloatArray:
    """Factors for members given their history and fixed offer factors: the ALS user step in closed form,
    ``(Y'Y + Y'(C - I)Y + lambda I) x = Y'Cp``, per member. Members with no positive evidence get zeros."""
    y = np.asarray(item_factors, dtype=np.float64)
    gram = y.T @ y + regularization * np.eye(y.shape[1])
    signed = confidence(interactions, alpha)
    out = np.zeros((signed.shape[0], y.shape[1]), dtype=np.float32)
    for row in range(signed.shape[0]):
        start, end = signed.indptr[row], signed.indptr[row + 1]
        values = signed.data[start:end].astype(np.float64)
        if not (values > 0).any():
            continue
        items = y[signed.indices[start:end]]
        conf = np.abs(values)
        a = gram + (items * (conf - 1.0)[:, None]).T @ items
        b = (items * np.where(values > 0, conf, 0.0)[:, None]).sum(axis=0)
        out[row] = np.linalg.solve(a, b)
    return out


def has_positive(interactions: sp.csr_matrix, axis: int) -> BoolArray:
    """Rows (axis=1) or columns (axis=0) with any positive evidence."""
    positive = sp.csr_matrix(interactions > 0)
    return np.asarray(positive.getnnz(axis=axis) > 0)


class _ImplicitFamily(Recommender):
    """What ALS and BPR share: fitting under one BLAS thread, cold rows as zeros, saving the factors."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._member_factors: FloatArray | None = None
        self._member_bias: FloatArray | None = None
        self._offer_factors: FloatArray | None = None
        self._offer_bias: FloatArray | None = None
        self._member_informed: BoolArray | None = None
        self._offer_informed: BoolArray | None = None

    def _fitted(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, BoolArray, BoolArray]:
        if (
            self._member_factors is None
            or self._member_bias is None
            or self._offer_factors is None
            or self._offer_bias is None
            or self._member_informed is None
            or self._offer_informed is None
        ):
            raise ModelError(f"the {self.family} model has not been fitted")
        return (
            self._member_factors,
            self._member_bias,
            self._offer_factors,
            self._offer_bias,
            self._member_informed,
            self._offer_informed,
        )

    def _set(
        self, member_factors: FloatArray, offer_factors: FloatArray, offer_bias: FloatArray, data: TrainingSet
    ) -> None:
        """Store the export; members and offers without positive evidence carry zeros."""
        self._member_informed = has_positive(data.interactions, axis=1)
        self._offer_informed = has_positive(data.interactions, axis=0)
        self._member_factors = np.where(self._member_informed[:, None], member_factors, 0).astype(np.float32)
        self._offer_factors = np.where(self._offer_informed[:, None], offer_factors, 0).astype(np.float32)
        self._offer_bias = np.where(self._offer_informed, offer_bias, 0).astype(np.float32)
        self._member_bias = np.zeros(len(self._member_factors), dtype=np.float32)

    def _fold_in(self, interactions: sp.csr_matrix) -> FloatArray:
        _, _, offer_factors, _, _, _ = self._fitted()
        return least_squares_fold_in(offer_factors, interactions, float(self.params["regularization"]), 1.0)

    def member_embeddings(
        self, member_features: sp.csr_matrix | None = None, interactions: sp.csr_matrix | None = None
    ) -> Embeddings:
        """Training members; or members given by history (fold-in). Features alone carry nothing here:
        such members come back as zeros, not informed, for the caller's fallback."""
        factors, bias, offer_factors, _, informed, _ = self._fitted()
        if interactions is not None:
            if interactions.shape[1] != offer_factors.shape[0]:
                raise ModelError(f"history covers {interactions.shape[1]} offers, the model {offer_factors.shape[0]}")
            history = sp.csr_matrix(interactions, dtype=np.float32)
            folded = self._fold_in(history)
            return Embeddings(
                factors=folded.astype(np.float32),
                bias=np.zeros(len(folded), dtype=np.float32),
                informed=has_positive(history, axis=1),
            )
        if member_features is not None:
            n = member_features.shape[0]
            return Embeddings(
                np.zeros((n, factors.shape[1]), np.float32), np.zeros(n, np.float32), np.zeros(n, np.bool_)
            )
        return Embeddings(factors=factors, bias=bias, informed=informed)

    def offer_embeddings(self, offer_features: sp.csr_matrix | None = None) -> Embeddings:
        """Training offers; offers never seen in training come back as zeros, not informed."""
        _, _, factors, bias, _, informed = self._fitted()
        if offer_features is not None:
            n = offer_features.shape[0]
            return Embeddings(
                np.zeros((n, factors.shape[1]), np.float32), np.zeros(n, np.float32), np.zeros(n, np.bool_)
            )
        return Embeddings(factors=factors, bias=bias, informed=informed)

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        member_factors, member_bias, offer_factors, offer_bias, member_informed, offer_informed = self._fitted()
        return {
            "member_factors": member_factors,
            "member_bias": member_bias,
            "offer_factors": offer_factors,
            "offer_bias": offer_bias,
            "member_informed": member_informed,
            "offer_informed": offer_informed,
        }

    def _restore(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self._member_factors = arrays["member_factors"].astype(np.float32)
        self._member_bias = arrays["member_bias"].astype(np.float32)
        self._offer_factors = arrays["offer_factors"].astype(np.float32)
        self._offer_bias = arrays["offer_bias"].astype(np.float32)
        self._member_informed = arrays["member_informed"].astype(np.bool_)
        self._offer_informed = arrays["offer_informed"].astype(np.bool_)


class ImplicitALS(_ImplicitFamily):
    """Implicit-feedback ALS; new members with history are folded in exactly like implicit's
    ``recalculate_user`` (it is called on the restored model)."""

    family: ClassVar[str] = "als"
    defaults: ClassVar[dict[str, Any]] = {
        "factors": 64,
        "regularization": 30.0,  # large, as confidences reach 1 + alpha * weight
        "alpha": 10.0,
        "iterations": 15,
        "random_state": 42,
        "num_threads": 2,
        "device": "cpu",  # cpu, cuda or auto (cuda when implicit.gpu.HAS_CUDA)
    }

    def _implicit(self) -> AlternatingLeastSquares:
        # alpha is applied in ``confidence``; implicit's own scaling stays at 1.
        with threadpool_limits(1, "blas"):
            return AlternatingLeastSquares(
                factors=int(self.params["factors"]),
                regularization=float(self.params["regularization"]),
                alpha=1.0,
                iterations=int(self.params["iterations"]),
                num_threads=int(self.params["num_threads"]),
                random_state=self.params["random_state"],
            )

    def _implicit_gpu(self) -> Any:
        from implicit.gpu.als import AlternatingLeastSquares as GpuAlternatingLeastSquares

        return GpuAlternatingLeastSquares(
            factors=int(self.params["factors"]),
            regularization=float(self.params["regularization"]),
            alpha=1.0,
            iterations=int(self.params["iterations"]),
            random_state=self.params["random_state"],
        )

    def fit(self, data: TrainingSet, *, show_progress: bool = False) -> Self:
        matrix = confidence(data.interactions, float(self.params["alpha"]))
        on_gpu = resolve_device(str(self.params["device"]), self.family) == "cuda"
        model = self._implicit_gpu() if on_gpu else self._implicit()
        try:
            with threadpool_limits(1, "blas"):
                model.fit(matrix, show_progress=show_progress)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"ALS could not be fitted: {exc}") from exc
        factors = host(model.item_factors)
        self._set(host(model.user_factors), factors, np.zeros(len(factors), np.float32), data)
        return self

    def _fold_in(self, interactions: sp.csr_matrix) -> FloatArray:
        _, _, offer_factors, _, _, _ = self._fitted()
        model = self._implicit()
        model.item_factors = offer_factors
        signed = confidence(interactions, float(self.params["alpha"]))
        with threadpool_limits(1, "blas"):
            folded = model.recalculate_user(np.arange(signed.shape[0]), signed)
        return np.asarray(folded, dtype=np.float32)


class ImplicitBPR(_ImplicitFamily):
    """Bayesian personalised ranking. implicit keeps the offer bias as an extra factor column (and a
    constant 1 in every member's factors); the export moves it into ``Embeddings.bias``."""

    family: ClassVar[str] = "bpr"
    defaults: ClassVar[dict[str, Any]] = {
        "factors": 64,
        "learning_rate": 0.01,
        "regularization": 0.05,
        "iterations": 300,
        "random_state": 42,
        "num_threads": 1,  # repeatable by default (parallel SGD races); `offers train --threads N` for speed
        "device": "cpu",  # cpu, cuda or auto (cuda when implicit.gpu.HAS_CUDA)
    }

    def fit(self, data: TrainingSet, *, show_progress: bool = False) -> Self:
        positive = sp.csr_matrix(data.interactions > 0, dtype=np.float32)
        positive.sort_indices()
        shared = {
            "factors": int(self.params["factors"]),
            "learning_rate": float(self.params["learning_rate"]),
            "regularization": float(self.params["regularization"]),
            "iterations": int(self.params["iterations"]),
            "random_state": self.params["random_state"],
        }
        with threadpool_limits(1, "blas"):
            if resolve_device(str(self.params["device"]), self.family) == "cuda":
                from implicit.gpu.bpr import BayesianPersonalizedRanking as GpuBayesianPersonalizedRanking

                model: Any = GpuBayesianPersonalizedRanking(**shared)
            else:
                model = BayesianPersonalizedRanking(**shared, num_threads=int(self.params["num_threads"]))
            try:
                model.fit(positive, show_progress=show_progress)
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"BPR could not be fitted: {exc}") from exc
        users, items = host(model.user_factors), host(model.item_factors)
        self._set(users[:, :-1], items[:, :-1], items[:, -1], data)
        return self
