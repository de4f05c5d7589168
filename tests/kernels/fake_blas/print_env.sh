#!/bin/sh
# Stands in for compacter-core in tests/kernels/launcher_test.cpp: prints the environment the
# launcher hands on (COMPACTER_CORE_PROGRAM), whatever the arguments.
exec env
