# The float32 GEMM kernels keep their accumulators in registers with this compiler
# (scripts/codegen_check.py: no vector register moves to or from the stack in their FMA loops).
if(CMAKE_C_COMPILER_ID STREQUAL "GNU" AND CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  add_test(NAME codegen COMMAND python3 ${CMAKE_SOURCE_DIR}/scripts/codegen_check.py --cc ${CMAKE_C_COMPILER})
endif()
