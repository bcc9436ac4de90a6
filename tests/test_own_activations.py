"""Activations and concept masks computed outside glassbox, aligned through the kernel:
`:auic --acts FILE --masks FILE` reads a `.npy` of activations and a `.npz` of masks as numpy
writes them (written here by hand, so the test needs no numpy) and scores them like a model's
layer. The Rust tests check the readers and the alignment; this checks the command reaches
them with the files and shows the result."""
import re
import struct
import zipfile

from conftest import error, ok, outputs, run

N, K, H, W = 2, 3, 4, 4


def npy(descr, shape, payload):
    """A `.npy` file's bytes: numpy's format 1.0 header, then the raw little-endian data."""
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + payload


def mask(pixels):
    """A [N, H, W] mask from the (image, row, column) it covers, as 0/1 per pixel."""
    return [1 if (n, y, x) in pixels else 0 for n in range(N) for y in range(H) for x in range(W)]


# `square`: the top-left 2x2 of image 0 and the bottom-right 2x2 of image 1. `stripe`: row 1
# of image 0 (overlapping the square on two pixels) and row 0 of image 1.
SQUARE = mask({(0, y, x) for y in (0, 1) for x in (0, 1)} | {(1, y, x) for y in (2, 3) for x in (2, 3)})
STRIPE = mask({(0, 1, x) for x in range(W)} | {(1, 0, x) for x in range(W)})


def write_files(folder):
    """Activations whose channel 0 is exactly the square's mask, channel 1 twice the stripe's,
    channel 2 a ramp over columns; masks as numpy's `savez_compressed` writes them (the square
    as bool, the stripe as uint8)."""
    values = []
    for n in range(N):
        for k in range(K):
            for y in range(H):
                for x in range(W):
                    i = (n * H + y) * W + x
                    values.append([float(SQUARE[i]), 2.0 * STRIPE[i], x / W][k])
    acts = folder / "own_acts.npy"
    acts.write_bytes(npy("<f4", (N, K, H, W), struct.pack(f"<{len(values)}f", *values)))
    masks = folder / "own_masks.npz"
    with zipfile.ZipFile(masks, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("object:square.npy", npy("|b1", (N, H, W), bytes(SQUARE)))
        z.writestr("object:stripe.npy", npy("|u1", (N, H, W), bytes(STRIPE)))
    return acts, masks


def test_auic_aligns_activations_and_masks_from_files(kc, tmp_path):
    acts, masks = write_files(tmp_path)
    r = ok(run(kc, f":auic --acts {acts} --masks {masks} --as own_r"))
    text = r.result()
    assert outputs(r) and "object:square" in text, text
    row = next((line for line in text.splitlines() if re.match(r"\s*ch\s+0\b", line)), None)
    assert row is not None and "object:square" in row and "1.000" in row, text
    assert ok(run(kc, "own_r.concepts[own_r.channels[0].concept].clone()")).result() == '"object:square"'
    assert ok(run(kc, 'format!("{:.3}", own_r.channels[0].miou)')).result() == '"1.000"'
    # Without --as, the result is named after the activations' file.
    ok(run(kc, f":auic --acts {acts} --masks {masks} --exact"))
    assert ok(run(kc, "own_acts_auic.channels.len()")).result() == str(K)


def test_wrong_auic_usage_is_explained_and_the_kernel_lives(kc, tmp_path):
    acts, masks = write_files(tmp_path)
    evalue = error(run(kc, f":auic some_net --layer conv1 --acts {acts} --masks {masks}"))
    assert "--acts replaces the model" in evalue and "--acts FILE --masks FILE" in evalue, evalue
    assert "needs --masks" in error(run(kc, f":auic --acts {acts}"))
    evalue = error(run(kc, f":auic --acts {tmp_path / 'absent.npy'} --masks {masks}"), "MetricError")
    assert "absent.npy" in evalue, evalue
    assert ok(run(kc, "1 + 1")).result() == "2"
