"""Reads IDX files, the array format of MNIST and Fashion-MNIST (`train-images-idx3-ubyte.gz`, ...).

The format (LeCun, "THE MNIST DATABASE of handwritten digits", section "FILE FORMATS"):

    byte 0-1   0x00 0x00
    byte 2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte 3     number of dimensions n
    n x 4      the size of each dimension, big-endian uint32
    ...        the values, big-endian, C order (last dimension fastest)

Files are read whole (Fashion-MNIST's largest is 47 MB unpacked), gzip'd or not (told apart by
gzip's magic bytes, not the file name). Every problem raises `IdxError` naming the file and what
is wrong: bad magic, unknown type code, a truncated header or payload, trailing bytes, a corrupt
gzip stream.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib

import numpy as np
import tensorflow as tf

# Type code -> big-endian numpy dtype.
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxError(ValueError):
  """A file that is not a complete, well-formed IDX file; the message names the file."""


def parse_idx(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
  """Parses the (uncompressed) bytes of one IDX file.

  Args:
    data: the whole file.
    name: the file's name, used in error messages.

  Returns:
    The array, with its IDX dimensions and the native-endian dtype of its type code.

  Raises:
    IdxError: bad magic, unknown type code, no dimensions, or a header / payload whose length does
      not match the dimensions.
  """
  if len(data) < 4:
    raise IdxError(f"{name}: truncated IDX file ({len(data)} bytes; the header alone is at least "
                   "4 bytes).")
  zero, type_code, ndim = struct.unpack(">HBB", data[:4])
  if zero != 0:
    raise IdxError(f"{name}: not an IDX file (magic {data[:4].hex()}: the first two bytes must be "
                   "zero).")
  if type_code not in DTYPES:
    raise IdxError(f"{name}: unknown IDX type code 0x{type_code:02x}; valid: "
                   f"{', '.join(f'0x{c:02x} ({d.name})' for c, d in DTYPES.items())}.")
  if ndim == 0:
    raise IdxError(f"{name}: IDX header declares 0 dimensions.")
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise IdxError(f"{name}: truncated IDX header: {ndim} dimensions need {header_size} bytes, "
                   f"the file has {len(data)}.")
  shape = struct.unpack(f">{ndim}I", data[4:header_size])
  dtype = DTYPES[type_code]
  expected = math.prod(shape) * dtype.itemsize
  found = len(data) - header_size
  if found < expected:
    raise IdxError(f"{name}: truncated IDX data: shape {shape} of {dtype.name} needs {expected} "
                   f"bytes after the header, the file has {found}.")
  if found > expected:
    raise IdxError(f"{name}: {found - expected} unexpected bytes after the data of shape {shape} "
                   f"({dtype.name}); the file is not a single IDX array.")
  array = np.frombuffer(data, dtype=dtype, offset=header_size, count=math.prod(shape))
  return array.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file, gzip'd (`*.gz`, as distributed) or not; local paths or gs://.

  Args:
    path: the file.

  Returns:
    The array (see `parse_idx`).

  Raises:
    FileNotFoundError: no such file.
    IdxError: a corrupt or truncated gzip stream, or a malformed IDX file (see `parse_idx`).
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"IDX file {path!r} does not exist.")
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  if data[:2] == _GZIP_MAGIC:
    try:
      data = gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as error:
      raise IdxError(f"{path}: corrupt or truncated gzip stream ({error}); download or reinstall "
                     "the file.") from None
  return parse_idx(data, name=path)
