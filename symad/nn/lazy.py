"""Lazy layers: ``nn.LazyLinear`` infers ``in_features`` from its first input (PyTorch's
LazyModuleMixin semantics: the module becomes an ``nn.Linear`` after its first call)."""
from __future__ import annotations

import warnings

from ..tensor import Tensor
from .layers import Linear
from .module import Module
from .parameter import UninitializedParameter, is_lazy


class LazyLinear(Linear):
    """``Linear`` whose ``in_features`` is taken from ``input.shape[-1]`` at the first call.

    Until then ``in_features`` is 0 and ``weight``/``bias`` are
    :class:`~symad.nn.parameter.UninitializedParameter`; the first call gives them storage,
    initialises them as ``Linear`` does and turns the module into an ``nn.Linear``. Optimizers
    may be built before that call (they hold the same parameter objects).

    >>> import symad, warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     layer = symad.nn.LazyLinear(2)
    >>> layer(symad.ones(4, 3)).shape, type(layer).__name__, layer.in_features
    (symad.Size([4, 2]), 'Linear', 3)
    """

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        Module.__init__(self)
        self.in_features = 0
        self.out_features = out_features
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        warnings.warn("Lazy modules are a new feature under heavy development so changes to the "
                      "API or functionality can happen at any moment.", UserWarning, stacklevel=2)

    def has_uninitialized_params(self) -> bool:
        """True until the first call (or a ``load_state_dict``) fixes the shapes."""
        return any(is_lazy(p) for p in self._parameters.values() if p is not None)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            Linear.reset_parameters(self)

    def initialize_parameters(self, input: Tensor) -> None:
        """Materialize ``weight`` (out, in) and ``bias`` from ``input``'s last dimension and
        initialise them like ``Linear``."""
        if self.has_uninitialized_params():
            self.in_features = int(input.shape[-1])
            self.weight.materialize((self.out_features, self.in_features))
            if self.bias is not None:
                self.bias.materialize((self.out_features,))
            self.reset_parameters()
        self.__class__ = self.cls_to_become

    def _lazy_load(self, state_dict, prefix: str) -> None:
        """Take the shapes of ``weight``/``bias`` from a checkpoint before it is loaded."""
        w = state_dict.get(prefix + "weight")
        if w is None or not self.has_uninitialized_params():
            return
        self.in_features = int(tuple(w.shape)[1])
        self.weight.materialize((self.out_features, self.in_features))
        if self.bias is not None:
            self.bias.materialize((self.out_features,))
        self.__class__ = self.cls_to_become

    def forward(self, input: Tensor) -> Tensor:
        self.initialize_parameters(input)
        return Linear.forward(self, input)  # the class is Linear now
