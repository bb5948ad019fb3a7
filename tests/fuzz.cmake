# libFuzzer targets (KILN_FUZZ=ON, clang only). The reader's sources are compiled straight
# into the fuzz binary with the fuzzer and sanitizer flags.
if(KILN_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "KILN_FUZZ needs clang: configure with -DCMAKE_C_COMPILER=clang")
  endif()
  # The whole library (reader, importer, layers, CPU kernels) built with the fuzz flags.
  add_executable(fuzz_onnx ${CMAKE_SOURCE_DIR}/fuzz/fuzz_onnx.c ${KILN_SOURCES})
  target_include_directories(fuzz_onnx PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src ${KILN_CBLAS_INCLUDE})
  target_link_libraries(fuzz_onnx PRIVATE ${KILN_OPENBLAS} Threads::Threads m)
  target_compile_options(fuzz_onnx PRIVATE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
                                           -fno-omit-frame-pointer)
  target_link_options(fuzz_onnx PRIVATE -fsanitize=fuzzer,address,undefined)

  # 60 s smoke run seeded with the conformance models (copied into a fresh corpus folder).
  set(KILN_FUZZ_CORPUS ${CMAKE_CURRENT_BINARY_DIR}/fuzz_onnx_corpus)
  set(KILN_ONNX_TESTS ${CMAKE_SOURCE_DIR}/../shared/onnx-tests)
  add_test(NAME fuzz_onnx_smoke
    COMMAND sh -c "rm -rf '${KILN_FUZZ_CORPUS}' && mkdir -p '${KILN_FUZZ_CORPUS}' && \
for f in '${KILN_ONNX_TESTS}'/node/*/model.onnx '${KILN_ONNX_TESTS}'/simple/*/model.onnx; do \
[ -f \"$f\" ] && cp \"$f\" '${KILN_FUZZ_CORPUS}'/\"$(basename \"$(dirname \"$f\")\")\".onnx; done; \
exec '$<TARGET_FILE:fuzz_onnx>' -max_total_time=60 -max_len=65536 -print_final_stats=1 '${KILN_FUZZ_CORPUS}'")
  set_tests_properties(fuzz_onnx_smoke PROPERTIES TIMEOUT 180)
endif()
