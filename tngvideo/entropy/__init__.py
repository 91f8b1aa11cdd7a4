"""Entropy stages: quantization, probability models, rate estimation and the ANS coder.

Nothing outside this package touches constriction.
"""

from tngvideo.entropy.coder import (
    CorruptStreamError,
    SymbolDecoder,
    decode_symbols,
    encode_symbol_groups,
    encode_symbols,
)
from tngvideo.entropy.exact import ACT_BITS, ExactNet
from tngvideo.entropy.factorized import FactorizedDensity
from tngvideo.entropy.gaussian import GaussianConditional
from tngvideo.entropy.quantization import add_uniform_noise, annealed_round, dequantize, quantize, ste_round
from tngvideo.entropy.rate import bits_from_likelihood
from tngvideo.entropy.tables import CdfTables

__all__ = [
    "ACT_BITS",
    "CdfTables",
    "CorruptStreamError",
    "ExactNet",
    "FactorizedDensity",
    "GaussianConditional",
    "SymbolDecoder",
    "add_uniform_noise",
    "annealed_round",
    "bits_from_likelihood",
    "decode_symbols",
    "dequantize",
    "encode_symbol_groups",
    "encode_symbols",
    "quantize",
    "ste_round",
]
