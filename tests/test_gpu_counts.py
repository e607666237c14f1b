"""What a GPU training step asks of the device, counted through the CuPy stand-in as real CuPy would run it (the
tables: `python bench.py --count`): upper bounds on each preset's kernels and bytes per step, no host sync inside
the framework's step, at most one in a train.py step. Counts, not timings: they are the same on every machine.
The counter itself is checked against calls whose cost is known by hand."""
import numpy as np
import pytest

import bench
import train
from benchmarks.common import parse_case
from benchmarks.counts import count_step

# preset:BATCHxBLOCK -> (kernels, GB read + written) per training step, at most
# (the GPU path, with the compiled kernels of tinygrad_proust/kernels.py, each counted as one launch)
BOUNDS = {"proust:32x256": (261, 2.78), "byte-gpt:64x128": (379, 2.88), "baby-gpt:64x256": (566, 39.98)}


@pytest.mark.parametrize("case", list(BOUNDS))
def test_a_training_step_stays_within_its_kernel_and_traffic_bounds(case, standin):
    preset, overrides, batch, block = parse_case(case)
    table = count_step(preset, batch, block, overrides)
    import cupy_standin
    kernels, traffic = cupy_standin.total(table, "kernels"), cupy_standin.total(table, "bytes") / 1e9
    syncs = cupy_standin.total(table, "sync")
    assert kernels <= BOUNDS[case][0] and traffic <= BOUNDS[case][1] and syncs == 0, (kernels, traffic, syncs)


def test_the_counter_counts_what_cupy_launches(standin):
    import cupy_standin
    xp = standin
    a, b = xp.ones((4, 8), dtype=np.float32), xp.ones((8, 3), dtype=np.float32)
    batched = xp.ones((2, 4, 8), dtype=np.float32)
    with cupy_standin.count_kernels() as counts:
        with counts.phase("p"):
            c = a @ b                               # one GEMM: reads 128 + 96 bytes, writes 48
            a.T.reshape(32)                         # a transposed view, then a copy to flatten it
            batched @ batched.transpose(0, 2, 1)    # CuPy copies the non-contiguous operand first
            batched @ b                             # broadcast batch: 3 pointer arrays of ndim - 2 = 1 kernel each
            c.sum()                                 # a reduction
            xp.zeros(5)                             # a memset
            xp.empty(5)                             # an allocation: no kernel
            c += 1                                  # in place: reads and writes c
            xp.multiply(c, 2, out=c)                # the same: an out= array is written, not read as well
            float(c[0, 0])                          # a view, then a sync
            xp.asarray(np.ones(3))                  # host to device
    row = counts.table["p"]
    assert {k: row[k][0] for k in row} == {"gemm": 3, "reduction": 1, "elementwise": 5, "copy": 2, "memset": 1,
                                           "allocation": 1, "view": 3, "host_to_device": 1, "sync": 1}
    assert row["gemm"][1] == (128 + 96 + 48) + (256 + 256 + 128) + (256 + 96 + 96)
    assert row["copy"][1] == 2 * 128 + 2 * 256 and row["host_to_device"][1] == 24
    assert row["elementwise"][1] == 2 * 48 + 2 * 48             # the pointer kernels' few bytes are not counted
    assert counts.total("kernels") == 12


def test_elementwise_results_are_c_contiguous_as_cupy_allocates_them(standin):
    """CuPy's ufuncs, operators, `where` and reductions write a new C-contiguous array, whatever their inputs'
    layout (NumPy follows the inputs'); so a batched matmul copies a transposed view but not `view * 2`."""
    import cupy_standin
    xp = standin
    q = xp.ones((2, 3, 4, 5), dtype=np.float32).swapaxes(1, 2)   # (2, 4, 3, 5), a transposed view
    results = [q * 2, -q, xp.exp(q), xp.maximum(q, 0), xp.where(q > 0, q, 0), q.sum(axis=-1, keepdims=True),
               np.multiply(q, q)]
    assert not q.flags.c_contiguous and all(r.flags.c_contiguous for r in results)
    out = xp.empty((2, 3, 4, 5), dtype=np.float32).swapaxes(1, 2)
    xp.multiply(q, 2, out=out)                                        # out= is written where it lies
    assert not out.flags.c_contiguous and bool((out == 2).all())
    k = xp.ones((2, 4, 5, 3), dtype=np.float32)
    with cupy_standin.count_kernels() as counts:
        (q * 2) @ k                                                   # no copy before the GEMM
        q @ k                                                         # the view is copied
    assert counts.total("copy") == 1


def test_bytes_extrapolated_from_batches_1_and_2_equal_a_step_run_at_the_batch(standin):
    """count_step extrapolates bytes from batches 1 and 2 (they are affine in the batch size): a step run at batch 5
    itself reads and writes exactly what the extrapolation says, with the same counts of everything else."""
    direct = count_step("proust", 5, 32, extrapolate=False)
    assert count_step("proust", 5, 32) == direct
    import cupy_standin
    assert cupy_standin.total(direct, "bytes") > 0


def test_a_train_script_step_reads_the_device_once(standin, tmp_path):
    import cupy_standin
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 40)
    args, start = train.parse_args(["--data", str(corpus), "--device", "gpu", "--n-layer", "1",
                                               "--n-embd", "16", "--n-head", "2", "--block-size", "16",
                                               "--batch-size", "4", "--grad-accum", "3",
                                               "--out-dir", str(tmp_path / "out")])
    _, tokenizer, parts, _ = train.load_data(args, start)
    run = train.build_run(args, tokenizer, parts, "gpu", start)
    train.train_step(run, 1e-3)
    with cupy_standin.count_syncs() as syncs:
        train.train_step(run, 1e-3)
    assert run.model.wte.weight.device == "gpu" and syncs.count == 1


def test_the_table_by_op_holds_the_same_counts_as_the_table_by_phase(standin):
    """bench.py --count --by-op: every call counted once either way; an op's own calls found by hand: a dropout
    is one elementwise kernel reading x and its mask and writing y, at the embeddings and, in each of proust's two
    layers, after attention, on the MLP's hidden layer and after the MLP."""
    import cupy_standin
    by_phase, by_op = count_step("proust", 2, 16, extrapolate=False, by=("phase", "op"))
    for kind in cupy_standin.KERNELS + cupy_standin.OTHERS + ("kernels", "bytes"):
        assert cupy_standin.total(by_op, kind) == cupy_standin.total(by_phase, kind), kind
    dropout = by_op["Dropout.forward"]
    B, T, C, hidden = 2, 16, 128, 512
    assert dropout["elementwise"] == [7, 3 * 4 * (B * T * C * (1 + 2 * 2) + B * T * hidden * 2)]
    assert sum(dropout[kind][0] for kind in cupy_standin.KERNELS) == 7
    assert {"LayerNorm.backward", "ScaledDotProductAttention.backward", "Tensor.backward", "AdamW.step",
            "optim.clip_grad_norm_", "functional.dropout"} <= set(by_op) and "other" not in by_op  # each has a maker


@pytest.mark.parametrize("argv, message", [
    (["--bpe", "--train-race"], "one experiment a run: --bpe, --train-race were given together"),
    (["--bpe", "--device", "gpu"], "--device does not apply to --bpe"),
    (["--count", "--steps", "3"], "--steps does not apply to --count"),
    (["--lora-targets", "mlp"], "--lora-targets does not apply to the training-step race"),
    (["--generate", "--cases", "proust:1x8", "--warmup", "2"], "--cases, --warmup do not apply to --generate"),
    (["--count", "--by-op", "--device", "gpu"], "--by-op counts through the stand-in"),
    (["--count", "--steps", "20"], "--steps does not apply to --count"),   # given at its default: still refused
    (["--tokenizer-race", "0"], "--tokenizer-race must be positive, got 0"),
    (["--device", "gpu", "--no-numerical"], "the numerical-gradient step runs only with --device cpu")])
def test_bench_refuses_an_option_its_experiment_would_ignore(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--count", "--cases", "proust"], "'proust': expected preset:BATCHxBLOCK"),
    (["--cases", "proust:axb"], "'proust:axb': expected preset:BATCHxBLOCK"),
    (["--count", "--cases", "nosuch:1x16"], "no preset 'nosuch'"),
    (["--count", "--cases", "proust:0x16"], "the batch must be 1 to 4096 and the block 1 to 8192"),
    (["--count", "--cases", "proust:1x100000"], "the batch must be 1 to 4096"),
    (["--finetune", "1", "1.5"], "--finetune: STEPS must be a whole number, at least 4, got 1.5"),
    (["--finetune", "1", "inf"], "--finetune: STEPS must be a whole number, at least 4, got inf")])
def test_bench_refuses_a_case_or_count_it_cannot_run_in_one_line(argv, message, capsys):
    """A case that is no preset:BATCHxBLOCK, or sizes nothing can run, were tracebacks (or a MemoryError after a
    while); --finetune's STEPS was cut to an integer, and under 4 made an evaluation every 0 steps."""
    with pytest.raises(SystemExit) as stop:
        bench.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and err.count("\n") <= 3, err


def test_bench_times_as_many_steps_as_it_is_asked_for_on_the_cpu(capsys, monkeypatch):
    """One step more measures the memory (it used to be the first timed one: --steps 1 had none left, a
    StatisticsError, and PyTorch's side was timed once more than ours)."""
    from benchmarks import steps
    lengths, real_median = [], steps.statistics.median

    def median(values):
        lengths.append(len(values))
        return real_median(values)

    monkeypatch.setattr(steps.statistics, "median", median)
    bench.main(["--cases", "raven:1x8", "--steps", "1", "--warmup", "0", "--no-numerical"])
    assert "raven" in capsys.readouterr().out and lengths[0] == 1 and set(lengths) == {1}   # ours, and PyTorch's
