# The CUDA backend: built when nvcc, the toolkit's cuBLASLt header and cuDNN's header are found
# (or KILN_CUDA=ON). Only the CUDA runtime is linked, statically: it loads the driver
# (libcuda.so) itself on first use. cuDNN and cuBLASLt are loaded with dlopen on first CUDA use
# (src/cuda/dynlib.c), so processes that never touch CUDA do not map them.
set(KILN_CUDA_OBJECTS "")
set(KILN_HAVE_CUDA OFF)
if(NOT KILN_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  find_package(CUDAToolkit QUIET)
  find_path(KILN_CUDNN_INCLUDE cudnn.h PATHS /usr/include/x86_64-linux-gnu /usr/include ${CUDAToolkit_INCLUDE_DIRS})
  find_path(KILN_CUBLASLT_INCLUDE cublasLt.h PATHS ${CUDAToolkit_INCLUDE_DIRS})
  file(GLOB KILN_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/cuda/*.cu ${CMAKE_SOURCE_DIR}/src/cuda/*.c)
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND TARGET CUDA::cudart_static AND KILN_CUBLASLT_INCLUDE
     AND KILN_CUDNN_INCLUDE AND KILN_CUDA_SOURCES)
    set(KILN_HAVE_CUDA ON)
  elseif(KILN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "KILN_CUDA=ON but nvcc, the static CUDA runtime, cublasLt.h, cudnn.h or src/cuda sources "
                        "are missing")
  endif()
endif()

if(KILN_HAVE_CUDA)
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES 90a-real 90-virtual)
  endif()
  add_library(kiln_cuda_objects OBJECT ${KILN_CUDA_SOURCES})
  target_include_directories(kiln_cuda_objects PRIVATE include src ${KILN_CUDNN_INCLUDE} ${KILN_CUBLASLT_INCLUDE})
  target_compile_definitions(kiln_objects PRIVATE KILN_HAVE_CUDA=1)
  target_compile_definitions(kiln_cuda_objects PRIVATE KILN_HAVE_CUDA=1)
  target_compile_options(kiln_cuda_objects PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fvisibility=hidden>
                                                   $<$<COMPILE_LANGUAGE:C>:-fvisibility=hidden>)
  set(KILN_CUDA_OBJECTS $<TARGET_OBJECTS:kiln_cuda_objects>)
  # libcudart_static.a defines its symbols hidden: libkiln.so exports none of them and cannot
  # interpose on the libcudart.so of an application that also uses CUDA.
  list(APPEND KILN_LINK_LIBS CUDA::cudart_static ${CMAKE_DL_LIBS})
  message(STATUS "kiln: CUDA backend enabled (cuDNN and cuBLASLt loaded at run time)")
else()
  message(STATUS "kiln: CUDA backend disabled")
endif()
