"""symad.linalg det / inv and the matrix trace: values vs numpy, gradients vs the matrix-calculus
identities (hand-derived), PyTorch's errors, and verification of matrix-calculus claims."""
from __future__ import annotations

import numpy as np
import pytest

import symad
import symad.linalg as LA

A0 = np.array([[2.0, 0.5, 0.1], [0.3, 1.5, 0.2], [0.0, 0.4, 1.8]])


def test_logdet_gradient_is_inverse_transpose_and_trace_identities():
    A = symad.tensor(A0, requires_grad=True)
    symad.log(LA.det(A)).backward()
    np.testing.assert_allclose(A.grad.numpy(), np.linalg.inv(A0).T, rtol=1e-12)
    B = symad.tensor(A0, requires_grad=True)
    C = np.arange(9.0).reshape(3, 3)
    symad.trace(symad.tensor(C) @ B).backward()          # d tr(CB)/dB = C^T
    np.testing.assert_allclose(B.grad.numpy(), C.T, rtol=1e-15)
    assert symad.trace(symad.tensor(C)).item() == 12.0 and symad.tensor(C).trace().item() == 12.0
    D = symad.tensor(A0, requires_grad=True)
    LA.inv(D).sum().backward()                            # -inv^T 1 1^T inv^T
    inv = np.linalg.inv(A0)
    np.testing.assert_allclose(D.grad.numpy(), -inv.T @ np.ones((3, 3)) @ inv.T, rtol=1e-12)
    assert LA.det(symad.tensor(A0, requires_grad=True)).grad_fn.name() == "LinalgDetBackward0"


def test_errors_follow_pytorch():
    with pytest.raises(RuntimeError, match="square matrices"):
        LA.det(symad.ones(2, 3))
    with pytest.raises(RuntimeError, match="expected a matrix"):
        symad.trace(symad.ones(2, 2, 2))


def test_matrix_calculus_claims_are_verified():
    A = symad.tensor(A0)
    right = symad.check_gradient(lambda A: symad.log(LA.det(A)), lambda A: LA.inv(A).T,
                                 inputs={"A": A})
    assert right.ok
    wrong = symad.check_gradient(lambda A: symad.log(LA.det(A)), lambda A: LA.inv(A),
                                 inputs={"A": A})
    assert not wrong.ok
