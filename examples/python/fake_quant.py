"""Calling libqtk from Python with ctypes (no build step; see examples/README.md).

    LIBQTK=/usr/local/lib/libqtk.so python3 examples/python/fake_quant.py

Prints the same fake-quantization line as examples/c/example.c.
"""
import ctypes
import os
import sys

lib = ctypes.CDLL(os.environ.get("LIBQTK", "libqtk.so"))
c_float_p = ctypes.POINTER(ctypes.c_float)
c_int_p = ctypes.POINTER(ctypes.c_int)
lib.qtk_qrange.argtypes = [ctypes.c_int, ctypes.c_bool, c_int_p, c_int_p]
lib.qtk_qrange.restype = ctypes.c_int  # qtk_status: 0 is QTK_OK
lib.qtk_params_asym.argtypes = [ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_int, c_float_p, c_float_p]
lib.qtk_params_asym.restype = None
lib.qtk_fake_quant_per_tensor.argtypes = [c_float_p, c_float_p, ctypes.c_size_t, ctypes.c_float, ctypes.c_float,
                                          ctypes.c_int, ctypes.c_int, ctypes.c_int]
lib.qtk_fake_quant_per_tensor.restype = None
lib.qtk_last_error.restype = ctypes.c_char_p
QTK_FQ_REF = 0

lo, hi = ctypes.c_int(), ctypes.c_int()
if lib.qtk_qrange(4, False, ctypes.byref(lo), ctypes.byref(hi)) != 0:
    sys.exit("qrange: " + lib.qtk_last_error().decode())
s, z = ctypes.c_float(), ctypes.c_float()
lib.qtk_params_asym(-1.0, 2.0, lo, hi, ctypes.byref(s), ctypes.byref(z))
x = (ctypes.c_float * 6)(-1.0, -0.3, 0.0, 0.7, 1.3, 2.5)
y = (ctypes.c_float * 6)()
lib.qtk_fake_quant_per_tensor(x, y, 6, s, z, lo, hi, QTK_FQ_REF)


def hexf(v):
    """C's printf %a of a float: trailing zero digits dropped."""
    m, e = float(v).hex().split("p")
    return m.rstrip("0").rstrip(".") + "p" + e


print("fake-quant s=%s z=%g: %s" % (hexf(s.value), z.value, " ".join(hexf(v) for v in y)))
# errors: a status and a message
if lib.qtk_qrange(1, False, ctypes.byref(lo), ctypes.byref(hi)) != 0:
    print("error:", lib.qtk_last_error().decode())
