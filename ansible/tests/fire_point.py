#!/usr/bin/python3
"""A program with one failure point, for the collection's tests.

Usage: fire_point.py LIBRARY CATEGORY FEATURE COUNT

Asks wrench_is_active(CATEGORY, FEATURE) COUNT times through LIBRARY (the
built libwrench.so.1), in the trigger directory of $WRENCH_DIR, as a
product program's failure point would, and prints how many calls were
active. ctypes spares the test a compiler and a build step of its own.
"""
import ctypes
import sys

library, category, feature, count = sys.argv[1:5]
lib = ctypes.CDLL(library)
lib.wrench_is_active.restype = ctypes.c_bool
lib.wrench_is_active.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
active = sum(lib.wrench_is_active(category.encode(), feature.encode())
             for _ in range(int(count)))
print(active)
