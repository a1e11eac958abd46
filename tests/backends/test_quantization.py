"""The CPU's int8 instruction set, which decides whether full-range int8 activations saturate."""

from __future__ import annotations

import pytest

from crossrank.benchmarks import machine_description
from crossrank.quantization import int8_instruction_set


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["fpu", "sse4_1", "avx2", "avx512bw", "avx512_vnni", "amx_int8"], "amx-int8"),
        (["sse4_1", "avx2", "avx512bw", "avx512_vnni"], "avx512-vnni"),
        (["sse4_1", "avx2", "avx_vnni"], "avx-vnni"),
        (["sse4_1", "avx2", "avx512f", "avx512bw"], "avx512bw"),
        (["fpu", "sse4_1", "fma", "avx2"], "avx2"),
        (["fpu", "sse4_1"], "sse4.1"),
        ([], "none"),
    ],
)
def test_the_best_int8_instruction_set_is_named(flags: list[str], expected: str) -> None:
    assert int8_instruction_set(flags) == expected


def test_benchmark_machine_line_names_this_cpus_int8_instruction_set() -> None:
    assert f"int8 instructions {int8_instruction_set()};" in machine_description()
