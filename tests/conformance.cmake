# ONNX backend conformance: every case under ../shared/onnx-tests (beside the repository) is
# imported, built for the CPU and run; results are compared with tests/conformance/results.tsv.
# Regenerate that file with: onnx_conformance_runner <tests dir> <results.tsv> --write-results
set(KILN_ONNX_TESTS_DIR "${CMAKE_SOURCE_DIR}/../shared/onnx-tests" CACHE PATH "ONNX backend test data")

add_executable(onnx_conformance_runner ${CMAKE_CURRENT_LIST_DIR}/conformance/runner.c)
target_include_directories(onnx_conformance_runner PRIVATE ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(onnx_conformance_runner PRIVATE kiln_static)

# Under the sanitizers every case runs in one process, so LeakSanitizer checks the whole run
# once at exit (forked children would each report the parent's live allocations).
set(KILN_CONFORMANCE_MODE "")
if(KILN_SANITIZE)
  set(KILN_CONFORMANCE_MODE --no-fork)
endif()
add_test(NAME onnx_conformance
         COMMAND onnx_conformance_runner ${KILN_ONNX_TESTS_DIR} ${CMAKE_CURRENT_LIST_DIR}/conformance/results.tsv
                 --skip ${CMAKE_CURRENT_LIST_DIR}/conformance/skip.tsv ${KILN_CONFORMANCE_MODE})
set_tests_properties(onnx_conformance PROPERTIES TIMEOUT 900)
