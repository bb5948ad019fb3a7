# Tests of the CUDA backend's internals (they include src/cuda headers, which need cudnn.h and
# cublasLt.h): built only when the backend is. Those through the public API live in tests/unit.
if(KILN_HAVE_CUDA)
  add_executable(test_cuda_dynlib ${CMAKE_CURRENT_SOURCE_DIR}/cuda/test_cuda_dynlib.c)
  target_include_directories(test_cuda_dynlib PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_CURRENT_SOURCE_DIR}
                                                      ${KILN_CUDNN_INCLUDE} ${KILN_CUBLASLT_INCLUDE})
  target_link_libraries(test_cuda_dynlib PRIVATE kiln_static)
  add_test(NAME test_cuda_dynlib COMMAND test_cuda_dynlib)
endif()
